/**
 * Dead letters: records the backend rejected as invalid, again and again (the uplink's maxAttempts). Moved out
 * of the journal so that they do not block the stream, and kept, with the backend's reason, in the journal's
 * database (table dead_letters) until someone replays or drops them: `fleetgate deadletter list|show|replay|
 * drop --data DIR`. A replay only marks the letter; the gateway re-appends marked letters as new records (new
 * seqs, so the backend does not take them for resends) when it starts and every few seconds while it runs, so
 * that only the gateway ever gives out seqs.
 */
import type { SqliteDatabase } from '@fleetgate/common';
import type { JournalRecord, NewRecord } from './journal.ts';

export interface DeadLetter {
  seq: number;
  deviceId: string;
  stream: string;
  contentType: string;
  deviceSeq: number;
  deviceTimeMs: number;
  gatewayTimeMs: number;
  payload: Buffer;
  reason: string;
  deadAtMs: number;
  /** Asked to be sent again (by `fleetgate deadletter replay`). */
  replay: boolean;
}

export class DeadLetters {
  private readonly statements;

  constructor(db: SqliteDatabase) {
    if (!db.readonly) {
      db.exec(`
      CREATE TABLE IF NOT EXISTS dead_letters (
        seq INTEGER PRIMARY KEY, device_id TEXT NOT NULL, stream TEXT NOT NULL, content_type TEXT NOT NULL,
        device_seq INTEGER NOT NULL, device_time INTEGER NOT NULL, gateway_time INTEGER NOT NULL, payload BLOB NOT NULL,
        reason TEXT NOT NULL, dead_at INTEGER NOT NULL, replay INTEGER NOT NULL DEFAULT 0
      );
    `);
    }
    const columns = `seq, device_id AS deviceId, stream, content_type AS contentType, device_seq AS deviceSeq, device_time AS deviceTimeMs,
      gateway_time AS gatewayTimeMs, payload, reason, dead_at AS deadAtMs, replay`;
    this.statements = {
      add: db.prepare('INSERT OR REPLACE INTO dead_letters VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)'),
      list: db.prepare<[], Omit<DeadLetter, 'replay'> & { replay: number }>(`SELECT ${columns} FROM dead_letters ORDER BY seq`),
      get: db.prepare<[number], Omit<DeadLetter, 'replay'> & { replay: number }>(`SELECT ${columns} FROM dead_letters WHERE seq = ?`),
      markReplay: db.prepare('UPDATE dead_letters SET replay = 1 WHERE seq = ?'),
      drop: db.prepare('DELETE FROM dead_letters WHERE seq = ?'),
      toReplay: db.prepare<[], Omit<DeadLetter, 'replay'> & { replay: number }>(`SELECT ${columns} FROM dead_letters WHERE replay = 1 ORDER BY seq`),
    };
  }

  add(record: JournalRecord, reason: string, nowMs: number): void {
    this.statements.add.run(record.seq, record.deviceId, record.stream, record.contentType, record.deviceSeq, record.deviceTimeMs, record.gatewayTimeMs, record.payload, reason, nowMs, 0);
  }

  /** Puts back a letter as it was (salvage of a damaged journal). */
  restore(l: DeadLetter): void {
    this.statements.add.run(l.seq, l.deviceId, l.stream, l.contentType, l.deviceSeq, l.deviceTimeMs, l.gatewayTimeMs, l.payload, l.reason, l.deadAtMs, l.replay ? 1 : 0);
  }

  list(): DeadLetter[] {
    return this.statements.list.all().map((r) => ({ ...r, replay: r.replay === 1 }));
  }

  get(seq: number): DeadLetter | undefined {
    const row = this.statements.get.get(seq);
    return row && { ...row, replay: row.replay === 1 };
  }

  /** Marks a letter to be sent again; false if there is none with this seq. */
  markReplay(seq: number): boolean {
    return this.statements.markReplay.run(seq).changes > 0;
  }

  drop(seq: number): boolean {
    return this.statements.drop.run(seq).changes > 0;
  }

  /** The letters marked for replay, as new records, and a function that forgets them once they are journaled. */
  takeReplays(nowMs: number): { records: NewRecord[]; done: () => void } {
    const letters = this.statements.toReplay.all();
    return {
      records: letters.map((l) => ({
        deviceId: l.deviceId, stream: l.stream, contentType: l.contentType, payload: l.payload,
        deviceSeq: 0, deviceEpoch: '', deviceTimeMs: l.deviceTimeMs, gatewayTimeMs: nowMs,
      })),
      done: () => {
        for (const l of letters) this.statements.drop.run(l.seq);
      },
    };
  }
}
