/** The SQLite journal's tables (journal-sqlite.ts describes them), created or brought up to date at open. */
import type { SqliteDatabase } from '@fleetgate/core/sqlite';
import { JournalError } from '../../errors.ts';

/** 6: table clean_close (clean-close.ts), which a gateway that does not know it must not open under. */
export const SCHEMA_VERSION = 6;
export const JOURNAL_FILE = 'journal.db';
/** `pending` of a row whose upstreams are not known (salvaged from a damaged journal): every upstream gets it. */
export const PENDING_UNKNOWN = -1;
/** Every gap, as Gaps, in seq order. */
export const SELECT_GAPS = 'SELECT from_seq AS "from", to_seq AS "to", reason, count, time AS timeMs FROM gaps ORDER BY from_seq';
/** The journal table's columns as a JournalRecord's fields. */
export const RECORD_COLUMNS = `seq, device_id AS deviceId, stream, device_seq AS deviceSeq, device_time AS deviceTimeMs,
  gateway_time AS gatewayTimeMs, content_type AS contentType, payload`;

/** Creates the journal's tables in `db`, or brings an older journal up to date; returns the version it found (0: new). */
export function createJournalSchema(db: SqliteDatabase, file: string): number {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SCHEMA_VERSION) {
    throw new JournalError(`${file} has journal schema ${version}; this gateway knows up to ${SCHEMA_VERSION} (downgrade?)`);
  }
  // Incremental vacuum takes effect only when the file is rewritten (VACUUM) once the page size is fixed, which
  // switching to WAL already does: a fresh file is empty and rewritten in no time, an older one once.
  db.pragma('auto_vacuum = INCREMENTAL');
  if ((db.pragma('auto_vacuum', { simple: true }) as number) !== 2) db.exec('VACUUM');
  if (version === SCHEMA_VERSION) return version;
  // Every statement is idempotent: an older journal gains what it lacks; a new one gets everything.
  db.exec(`
    CREATE TABLE IF NOT EXISTS journal (
      seq          INTEGER PRIMARY KEY,
      device_id    TEXT    NOT NULL,
      stream       TEXT    NOT NULL,
      device_seq   INTEGER NOT NULL,
      device_time  INTEGER NOT NULL,
      gateway_time INTEGER NOT NULL,
      content_type TEXT    NOT NULL,
      payload      BLOB    NOT NULL,
      pending      INTEGER NOT NULL DEFAULT 1
    );
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS device_seqs (device_id TEXT PRIMARY KEY, epoch TEXT NOT NULL, last_seq INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS gaps (from_seq INTEGER PRIMARY KEY, to_seq INTEGER NOT NULL, reason TEXT NOT NULL, count INTEGER NOT NULL, time INTEGER NOT NULL, pending INTEGER NOT NULL DEFAULT 1);
    CREATE TABLE IF NOT EXISTS upstreams (name TEXT PRIMARY KEY, bit INTEGER NOT NULL UNIQUE) WITHOUT ROWID;
  `);
  // Schema 5 routes rows to several upstreams. An older journal had one upstream, unnamed: its rows wait for bit
  // 1, which the first configured upstream takes over (registerUpstreams).
  for (const table of ['journal', 'gaps']) {
    const columns = db.prepare<[], { name: string }>(`PRAGMA table_info(${table})`).all();
    if (!columns.some((c) => c.name === 'pending')) db.exec(`ALTER TABLE ${table} ADD COLUMN pending INTEGER NOT NULL DEFAULT 1`);
  }
  if (version > 0 && version < 5) db.exec("INSERT OR IGNORE INTO upstreams (name, bit) VALUES ('', 1)");
  db.pragma(`user_version = ${SCHEMA_VERSION}`);
  // Schema 4 remembers whether a backend has seen the journal; one written by an older gateway that has given
  // out seqs is taken to have been seen (renumbering rows a backend holds would duplicate them there).
  if (version > 0 && version < 4)
    db.exec("INSERT OR IGNORE INTO meta (key, value) SELECT 'welcomed', 1 FROM meta WHERE key = 'last_seq' AND value > 0");
  return version;
}

/** The meta table as a map (last_seq, acked_through, welcomed). */
export function readMeta(db: SqliteDatabase): Map<string, number> {
  return new Map(
    db
      .prepare<[], { key: string; value: number }>('SELECT key, value FROM meta')
      .all()
      .map((row) => [row.key, row.value]),
  );
}
