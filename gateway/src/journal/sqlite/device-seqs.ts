/**
 * Dedupe of device-SDK resends: device_seqs(device_id, epoch, last_seq) holds, per device, the highest deviceSeq
 * of its current epoch journaled; a record at or below it is a resend and is left out. Rows are read from disk
 * once per device (devices are few) and cached; what a transaction writes reaches the cache only once it
 * committed, so a failed commit forgets nothing and remembers nothing.
 */
import type { SqliteDatabase } from '@fleetgate/core/sqlite';
import type { NewRecord } from '../journal.ts';

export interface DeviceSeq {
  epoch: string;
  lastSeq: number;
}

/** What one transaction would leave in device_seqs: applied to the cache by `remember`, after COMMIT. */
export type DeviceSeqChanges = Map<string, DeviceSeq>;

export class DeviceSeqs {
  private readonly cache = new Map<string, DeviceSeq>();
  private readonly statements;

  constructor(db: SqliteDatabase) {
    this.statements = {
      select: db.prepare<[string], DeviceSeq>('SELECT epoch, last_seq AS lastSeq FROM device_seqs WHERE device_id = ?'),
      upsert: db.prepare('INSERT OR REPLACE INTO device_seqs (device_id, epoch, last_seq) VALUES (?, ?, ?)'),
    };
  }

  lastDeviceSeq(deviceId: string, epoch: string): number {
    const state = this.get(deviceId);
    return state && state.epoch === epoch ? state.lastSeq : 0;
  }

  /**
   * Inside the commit's transaction: the indexes of the records that are new (not resends), in order, after
   * writing the device_seqs rows they move; `changes` collects what the cache is to learn after COMMIT.
   * Undefined when no record has a device seq (MQTT): every record is new.
   */
  keepNew(records: readonly NewRecord[], changes: DeviceSeqChanges): number[] | undefined {
    if (!records.some((r) => r.deviceSeq > 0)) return undefined;
    const kept: number[] = [];
    for (let i = 0; i < records.length; i++) if (this.isNew(records[i]!, changes)) kept.push(i);
    for (const [deviceId, { epoch, lastSeq }] of changes) this.statements.upsert.run(deviceId, epoch, lastSeq);
    return kept;
  }

  /** After COMMIT: the cache takes what the transaction wrote. */
  remember(changes: DeviceSeqChanges): void {
    for (const [deviceId, state] of changes) this.cache.set(deviceId, state);
  }

  private get(deviceId: string): DeviceSeq | undefined {
    let state = this.cache.get(deviceId);
    if (state === undefined) {
      state = this.statements.select.get(deviceId);
      if (state) this.cache.set(deviceId, state);
    }
    return state;
  }

  /** Is this record new (not a resend)? Notes it in `changes`. */
  private isNew(r: NewRecord, changes: DeviceSeqChanges): boolean {
    if (r.deviceSeq <= 0) return true;
    const state = changes.get(r.deviceId) ?? this.get(r.deviceId);
    if (state && state.epoch === r.deviceEpoch && r.deviceSeq <= state.lastSeq) return false;
    changes.set(r.deviceId, { epoch: r.deviceEpoch, lastSeq: r.deviceSeq });
    return true;
  }
}
