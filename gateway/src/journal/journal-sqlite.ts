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
 *
 * Seqs are given by this class, not by SQLite: a plain rowid restarts at max(rowid) + 1, so it would reuse
 * seqs once every row has been freed, and the backend, which dedupes by (gateway, seq), would drop new data as
 * duplicates. meta.last_seq is written in the same transaction as the rows it covers, so after a crash
 * lastSeq = max(meta.last_seq, max(seq)) and never goes backwards.
 *
 * What is freed when: rows are deleted only by a commit that carries an `ackedThrough` (the backend's
 * cumulative ack), in the same transaction that moves meta.acked_through. Nothing else deletes rows.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { BulkInsert, FleetgateError, openSqlite, type Durability, type SqliteDatabase } from '@fleetgate/common';
import type { CommitResult, Journal, JournalRecord, JournalStats, NewRecord } from './journal.ts';

const SCHEMA_VERSION = 1;
export const JOURNAL_FILE = 'journal.db';

/** What one transaction did; the bytes are kept out of CommitResult, only the counters need them. */
interface TxOutcome extends CommitResult {
  releasedBytes: number;
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
      const firstSeq = this.last + 1;
      const seq = this.last + records.length;
      this.insertingFrom = firstSeq;
      this.insert.run(records);
      if (records.length > 0) this.setMeta.run('last_seq', seq);
      let released = { rows: 0, bytes: 0 };
      if (ackedThrough > this.acked) {
        released = this.measureThrough.get(ackedThrough)!;
        this.deleteThrough.run(ackedThrough);
        this.setMeta.run('acked_through', ackedThrough);
      }
      return { firstSeq, lastSeq: seq, released: released.rows, releasedBytes: released.bytes };
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
    for (const r of records) this.payloadBytes += r.payload.length;
    this.rows += records.length;
    if (ackedThrough > this.acked) {
      this.acked = ackedThrough;
      this.rows -= result.released;
      this.payloadBytes -= result.releasedBytes;
    }
    return { firstSeq: result.firstSeq, lastSeq: result.lastSeq, released: result.released };
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
