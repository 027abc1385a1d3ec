/**
 * The SQLite journal.
 *
 * Layout: one database file `journal.db` (plus its `-wal` and `-shm`) in the data folder, in WAL mode, so that
 * a commit appends to the WAL and fsyncs once (durability `power`) or not at all (`process`).
 *
 *   journal(seq INTEGER PRIMARY KEY, device_id, stream, device_seq, device_time, gateway_time, content_type,
 *           payload BLOB)      one row per message; payload last so the small columns never need overflow pages
 *   meta(key, value)           'last_seq': the highest seq ever given out; 'acked_through': everything up to
 *                              here has been acked by the backend and freed
 *   device_seqs(device_id, epoch, last_seq)   per device-SDK device: the highest deviceSeq of its current
 *                              epoch journaled; a record at or below it is a resend and is left out
 *
 * Seqs are given by this class, not by SQLite: a plain rowid restarts at max(rowid) + 1, so it would reuse
 * seqs once every row has been freed, and the backend, which dedupes by (gateway, seq), would drop new data as
 * duplicates. meta.last_seq is written in the same transaction as the rows it covers, so after a crash
 * lastSeq = max(meta.last_seq, max(seq)) and never goes backwards.
 *
 * What is freed when: rows are deleted only by a commit that carries an `ackedThrough` (the backend's
 * cumulative ack), in the same transaction that moves meta.acked_through. Nothing else deletes rows.
 * device_seqs is written in the transaction that journals the records it covers, so a resend is recognised
 * even when it races its first copy's commit across a reconnect.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { BulkInsert, FleetgateError, openSqlite, type Durability, type SqliteDatabase } from '@fleetgate/common';
import type { CommitResult, Journal, JournalRecord, JournalStats, NewRecord } from './journal.ts';

const SCHEMA_VERSION = 2;
export const JOURNAL_FILE = 'journal.db';

/** What one transaction did; the bytes are kept out of CommitResult, only the counters need them. */
interface TxOutcome extends CommitResult {
  releasedBytes: number;
  /** device_seqs as the transaction left them: applied to the cache only once it committed. */
  deviceSeqs: Map<string, DeviceSeq>;
}

interface DeviceSeq {
  epoch: string;
  lastSeq: number;
}

export class JournalError extends FleetgateError {
  override name = 'JournalError';
}

export interface SqliteJournalOptions {
  /** The data folder; created if missing. */
  dir: string;
  durability: Durability;
}

export class SqliteJournal implements Journal {
  readonly file: string;
  private readonly db: SqliteDatabase;
  private last: number;
  private acked: number;
  private rows: number;
  private payloadBytes: number;
  private insertingFrom = 0;
  /** device_seqs rows read so far (devices are few; each is read from disk once). */
  private readonly deviceSeqs = new Map<string, DeviceSeq>();
  private readonly selectDeviceSeq;
  private readonly upsertDeviceSeq;
  private readonly insert;
  private readonly setMeta;
  private readonly selectAfter;
  private readonly measureThrough;
  private readonly deleteThrough;
  private readonly selectOldest;
  private readonly commitTx;

  constructor({ dir, durability }: SqliteJournalOptions) {
    this.file = join(dir, JOURNAL_FILE);
    this.db = openSqlite(this.file, { durability });
    migrate(this.db, this.file);

    // Row i of a commit gets seq firstSeq + i (the commit sets this.insertingFrom first).
    this.insert = new BulkInsert<NewRecord>(
      this.db,
      'INSERT INTO journal (seq, device_id, stream, device_seq, device_time, gateway_time, content_type, payload)',
      8,
      (r, p, o, i) => {
        p[o] = this.insertingFrom + i;
        p[o + 1] = r.deviceId;
        p[o + 2] = r.stream;
        p[o + 3] = r.deviceSeq;
        p[o + 4] = r.deviceTimeMs;
        p[o + 5] = r.gatewayTimeMs;
        p[o + 6] = r.contentType;
        p[o + 7] = r.payload;
      },
    );
    this.setMeta = this.db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)');
    this.selectAfter = this.db.prepare<[number, number], JournalRecord>(
      `SELECT seq, device_id AS deviceId, stream, device_seq AS deviceSeq, device_time AS deviceTimeMs,
              gateway_time AS gatewayTimeMs, content_type AS contentType, payload
       FROM journal WHERE seq > ? ORDER BY seq LIMIT ?`,
    );
    this.measureThrough = this.db.prepare<[number], { rows: number; bytes: number }>(
      'SELECT count(*) AS rows, coalesce(sum(length(payload)), 0) AS bytes FROM journal WHERE seq <= ?',
    );
    this.deleteThrough = this.db.prepare('DELETE FROM journal WHERE seq <= ?');
    this.selectOldest = this.db.prepare<[], { t: number }>('SELECT gateway_time AS t FROM journal ORDER BY seq LIMIT 1');
    this.selectDeviceSeq = this.db.prepare<[string], DeviceSeq>('SELECT epoch, last_seq AS lastSeq FROM device_seqs WHERE device_id = ?');
    this.upsertDeviceSeq = this.db.prepare('INSERT OR REPLACE INTO device_seqs (device_id, epoch, last_seq) VALUES (?, ?, ?)');

    const meta = new Map(
      this.db
        .prepare<[], { key: string; value: number }>('SELECT key, value FROM meta')
        .all()
        .map((row) => [row.key, row.value]),
    );
    const held = this.db
      .prepare<[], { rows: number; bytes: number; maxSeq: number | null }>(
        'SELECT count(*) AS rows, coalesce(sum(length(payload)), 0) AS bytes, max(seq) AS maxSeq FROM journal',
      )
      .get()!;
    this.acked = meta.get('acked_through') ?? 0;
    this.last = Math.max(meta.get('last_seq') ?? 0, held.maxSeq ?? 0, this.acked);
    this.rows = held.rows;
    this.payloadBytes = held.bytes;

    this.commitTx = this.db.transaction((records: readonly NewRecord[], ackedThrough: number): TxOutcome => {
      const deviceSeqs = new Map<string, DeviceSeq>();
      const stored = records.some((r) => r.deviceSeq > 0) ? records.filter((r) => this.isNew(r, deviceSeqs)) : records;
      for (const [deviceId, { epoch, lastSeq }] of deviceSeqs) this.upsertDeviceSeq.run(deviceId, epoch, lastSeq);
      const firstSeq = this.last + 1;
      const seq = this.last + stored.length;
      this.insertingFrom = firstSeq;
      this.insert.run(stored);
      if (stored.length > 0) this.setMeta.run('last_seq', seq);
      let released = { rows: 0, bytes: 0 };
      if (ackedThrough > this.acked) {
        released = this.measureThrough.get(ackedThrough)!;
        this.deleteThrough.run(ackedThrough);
        this.setMeta.run('acked_through', ackedThrough);
      }
      return { firstSeq, lastSeq: seq, stored, duplicates: records.length - stored.length, released: released.rows, releasedBytes: released.bytes, deviceSeqs };
    });
  }

  get lastSeq(): number {
    return this.last;
  }

  get ackedThrough(): number {
    return this.acked;
  }

  commit(records: readonly NewRecord[], ackedThrough = 0): CommitResult {
    if (ackedThrough > this.last + records.length) {
      throw new RangeError(`cannot ack through ${ackedThrough}: the last seq is ${this.last + records.length}`);
    }
    const result = this.commitTx(records, ackedThrough);
    // Only now, after COMMIT returned, does the in-memory view move: a failed commit changes nothing.
    this.last = result.lastSeq;
    for (const r of result.stored) this.payloadBytes += r.payload.length;
    this.rows += result.stored.length;
    for (const [deviceId, state] of result.deviceSeqs) this.deviceSeqs.set(deviceId, state);
    if (ackedThrough > this.acked) {
      this.acked = ackedThrough;
      this.rows -= result.released;
      this.payloadBytes -= result.releasedBytes;
    }
    return { firstSeq: result.firstSeq, lastSeq: result.lastSeq, stored: result.stored, duplicates: result.duplicates, released: result.released };
  }

  lastDeviceSeq(deviceId: string, epoch: string): number {
    const state = this.deviceSeq(deviceId);
    return state && state.epoch === epoch ? state.lastSeq : 0;
  }

  private deviceSeq(deviceId: string): DeviceSeq | undefined {
    let state = this.deviceSeqs.get(deviceId);
    if (state === undefined) {
      state = this.selectDeviceSeq.get(deviceId);
      if (state) this.deviceSeqs.set(deviceId, state);
    }
    return state;
  }

  /** Is this record new (not a resend)? Notes it in `pending`, the device_seqs this transaction will write. */
  private isNew(r: NewRecord, pending: Map<string, DeviceSeq>): boolean {
    if (r.deviceSeq <= 0) return true;
    const state = pending.get(r.deviceId) ?? this.deviceSeq(r.deviceId);
    if (state && state.epoch === r.deviceEpoch && r.deviceSeq <= state.lastSeq) return false;
    pending.set(r.deviceId, { epoch: r.deviceEpoch, lastSeq: r.deviceSeq });
    return true;
  }

  readAfter(afterSeq: number, maxRecords: number, maxBytes: number): JournalRecord[] {
    if (maxRecords <= 0) return [];
    const out: JournalRecord[] = [];
    let bytes = 0;
    for (const row of this.selectAfter.iterate(afterSeq, maxRecords)) {
      if (out.length > 0 && bytes + row.payload.length > maxBytes) break;
      out.push(row);
      bytes += row.payload.length;
    }
    return out;
  }

  stats(): JournalStats {
    return {
      rows: this.rows,
      payloadBytes: this.payloadBytes,
      fileBytes: fileSize(this.file) + fileSize(`${this.file}-wal`),
      oldestTimeMs: this.rows > 0 ? (this.selectOldest.get()?.t ?? null) : null,
      lastSeq: this.last,
      ackedThrough: this.acked,
    };
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

function migrate(db: SqliteDatabase, file: string): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SCHEMA_VERSION) {
    throw new JournalError(`${file} has journal schema ${version}; this gateway knows up to ${SCHEMA_VERSION} (downgrade?)`);
  }
  if (version === SCHEMA_VERSION) return;
  // Every statement is idempotent: a journal of schema 1 gains device_seqs; a new one gets everything.
  db.exec(`
    CREATE TABLE IF NOT EXISTS journal (
      seq          INTEGER PRIMARY KEY,
      device_id    TEXT    NOT NULL,
      stream       TEXT    NOT NULL,
      device_seq   INTEGER NOT NULL,
      device_time  INTEGER NOT NULL,
      gateway_time INTEGER NOT NULL,
      content_type TEXT    NOT NULL,
      payload      BLOB    NOT NULL
    );
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS device_seqs (device_id TEXT PRIMARY KEY, epoch TEXT NOT NULL, last_seq INTEGER NOT NULL) WITHOUT ROWID;
    PRAGMA user_version = ${SCHEMA_VERSION};
  `);
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
