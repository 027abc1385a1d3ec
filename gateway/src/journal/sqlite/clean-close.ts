/**
 * What a clean close leaves for the next open, so that a journal of any size opens in constant time: the
 * journal's counters and each upstream's backlog (by its bit) as they stood, one row in table clean_close
 * (schema 6). The next open takes it instead of counting every row (GROUP BY pending: about 0.5 s per million
 * rows on a 2-core VM, far more on a Pi) and instead of running quick_check over the whole file (heal.ts), and
 * deletes it at once, in a transaction of its own: from then on the rows may change, and a crash must never
 * leave a snapshot older than the rows. A journal closed any other way (a crash, kill -9, a power cut) has none
 * and is checked and counted as before; an older gateway refuses schema 6, so none can change the rows under a
 * snapshot it does not know of.
 *
 * The snapshot is checked against the rows on the way in (the lowest and highest seq, read from the primary key:
 * constant time); a mismatch, or a configuration that changed rows at open (an upstream forgotten), falls back to
 * counting. A change under the snapshot that moves neither bound is not seen: nothing but the gateway writes the
 * journal's rows (`fleetgate deadletter` writes dead_letters only).
 */
import type { SqliteDatabase } from '@fleetgate/core/sqlite';
import { heldRows, type HeldRows } from './backlog.ts';

/** One upstream's backlog as a clean close left it, by its bit in `pending`. */
export interface BacklogSnapshot {
  bit: number;
  rows: number;
  bytes: number;
}

/** What a clean close writes: the rows and payload bytes held, each upstream's share of them, and the seq bounds. */
export interface CleanClose {
  rows: number;
  payloadBytes: number;
  backlogs: BacklogSnapshot[];
  /** The lowest and highest seq held then (null: none). */
  minSeq: number | null;
  maxSeq: number | null;
}

function seqBounds(db: SqliteDatabase): { minSeq: number | null; maxSeq: number | null } {
  return db
    .prepare<[], { minSeq: number | null; maxSeq: number | null }>('SELECT min(seq) AS minSeq, max(seq) AS maxSeq FROM journal')
    .get()!;
}

const CREATE = 'CREATE TABLE IF NOT EXISTS clean_close (id INTEGER PRIMARY KEY CHECK (id = 1), snapshot TEXT NOT NULL)';

/** Whether the last close was clean (read-only: heal.ts asks before it decides to run quick_check). */
export function closedCleanly(db: SqliteDatabase): boolean {
  try {
    return db.prepare('SELECT 1 FROM clean_close').get() !== undefined;
  } catch {
    // No such table (a journal never closed by a gateway that leaves one), or unreadable: not clean.
    return false;
  }
}

/**
 * Takes the snapshot a clean close left (deleting it), if there is one and it agrees with the rows: the journal's
 * counters (lastSeq and the low-water mark from meta and the lowest and highest seq, as countHeld makes them) and
 * each upstream's backlog.
 */
export function takeCleanClose(
  db: SqliteDatabase,
  meta: ReadonlyMap<string, number>,
  /** false: the journal was brought up from an older schema at this open; a snapshot there is not to be trusted. */
  trusted = true,
): { held: HeldRows; backlogs: BacklogSnapshot[] } | undefined {
  db.exec(CREATE);
  const row = db.prepare<[], { snapshot: string }>('SELECT snapshot FROM clean_close').get();
  if (!row) return undefined;
  db.exec('DELETE FROM clean_close');
  if (!trusted) return undefined;
  let snapshot: Partial<CleanClose>;
  try {
    snapshot = JSON.parse(row.snapshot) as Partial<CleanClose>;
  } catch {
    return undefined;
  }
  const { rows, payloadBytes, backlogs } = snapshot;
  if (typeof rows !== 'number' || typeof payloadBytes !== 'number' || !Array.isArray(backlogs)) return undefined;
  const { minSeq, maxSeq } = seqBounds(db);
  if (minSeq !== snapshot.minSeq || maxSeq !== snapshot.maxSeq || (maxSeq === null) !== (rows === 0)) return undefined;
  return { held: heldRows(meta, rows, payloadBytes, minSeq, maxSeq ?? 0), backlogs };
}

/** At a clean close, the last write: the counters for the next open. */
export function leaveCleanClose(db: SqliteDatabase, snapshot: Omit<CleanClose, 'minSeq' | 'maxSeq'>): void {
  db.exec(CREATE);
  db.prepare('INSERT OR REPLACE INTO clean_close (id, snapshot) VALUES (1, ?)').run(
    JSON.stringify({ ...snapshot, ...seqBounds(db) }),
  );
}
