/**
 * Opening the journal so that a damaged file never stops the gateway: a quick check on start, and when the
 * journal is damaged (a truncated file, flipped bytes, a WAL with a frame broken in the middle) it is moved
 * aside whole, every row that can still be read is copied with its seq into a fresh journal, and the seqs that
 * could not be read are recorded as `journal-damaged` gaps, which the uplink reports to the backend.
 *
 * Rows are read in two passes: through SQLite, stepping over the parts it cannot read, then from the raw pages
 * of the file and the WAL (page-scan.ts) for whatever SQLite could not reach. The fresh journal continues after
 * the last seq the old one gave out (its meta row, or the seq lease when that is lost too), so no seq is ever
 * given out twice. A gap's count is then an upper bound: the backend subtracts what it holds from the range.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import Database from 'better-sqlite3';
import { type Durability, errorMessage } from '@fleetgate/core';
import { fsyncDir, openSqlite, type SqliteDatabase } from '@fleetgate/core/sqlite';
import { DeadLetters } from '../dead-letters.ts';
import type { Gap, JournalRecord, SeqRange } from '../journal.ts';
import { checkWal, hasSqliteHeader, scanJournalRows } from './page-scan.ts';
import { closedCleanly } from './clean-close.ts';
import { SqliteDeadLetterTable } from './dead-letter-table.ts';
import { SqliteJournal, type SqliteJournalOptions } from './journal-sqlite.ts';
import { createJournalSchema, JOURNAL_FILE, PENDING_UNKNOWN, RECORD_COLUMNS, SELECT_GAPS } from './schema.ts';
import { fsyncFile, moveSqliteFiles, removeSqliteFiles, writeFileDurably } from './files.ts';
import { Reserve } from './reserve.ts';
import { readSeqLease } from './seq-lease.ts';

export interface HealReport {
  /** What was wrong with the journal. */
  damage: string;
  /** Where the damaged files were moved (the `-wal` beside it, if there was one). */
  movedTo: string;
  /** Rows copied into the fresh journal. */
  salvaged: number;
  /** Seqs that could not be read, now reported upstream. */
  gaps: Gap[];
  lost: number;
}

export interface OpenedJournal {
  journal: SqliteJournal;
  /** Set when the journal was damaged and has been healed. */
  healed?: HealReport;
}

const READ_CHUNK = 1000;
/** Written first by a heal, removed last: an open that finds it finishes the heal (heal()). */
export const HEAL_MARKER = 'journal.healing';
/** Where the salvage writes, renamed to journal.db once complete and durable. */
export const HEALING_FILE = 'journal.healing.db';

/** Opens the journal in options.dir, healing it first if it is damaged. Throws only if a fresh journal cannot be made. */
export function openJournal(options: SqliteJournalOptions, now = Date.now()): OpenedJournal {
  const file = join(options.dir, JOURNAL_FILE);
  const interrupted = interruptedHeal(options.dir, file);
  if (interrupted) return heal(options, file, interrupted.damage, interrupted.movedTo, now);
  let damage = findDamage(file);
  if (damage === undefined) {
    try {
      return { journal: new SqliteJournal(options) };
    } catch (err: unknown) {
      // Damage quick_check did not run to see (it is skipped after a clean close: findDamage) shows here, when
      // the open reads the pages it needs: heal it as the check would have.
      if (!isCorruption(err)) throw err;
      damage = `SQLite cannot read it: ${errorMessage(err)}`;
    }
  }
  const movedTo = join(options.dir, `journal.damaged-${new Date(now).toISOString().replace(/[:.]/g, '-')}.db`);
  return heal(options, file, damage, movedTo, now);
}

/**
 * A heal survives being cut short (kill -9, a power cut) at any step, because a partly salvaged journal must never
 * open as a sound one (the rows not yet copied would be lost without a gap). The steps, each durable before the
 * next (files fsynced, then their folder):
 *   1. HEAL_MARKER says which damaged file the heal reads, and why;
 *   2. the damaged files move aside (the -wal and -shm first, the database file last);
 *   3. the salvage writes HEALING_FILE, which is fsynced and renamed to journal.db;
 *   4. the marker goes.
 * An open that finds the marker (interruptedHeal) starts again at step 2 (the damaged file is still in place) or 3
 * (it was moved: whatever HEALING_FILE holds is thrown away and the salvage runs again), or only does step 4.
 */
function heal(options: SqliteJournalOptions, file: string, damage: string, movedTo: string, now: number): OpenedJournal {
  const dir = options.dir;
  writeFileDurably(join(dir, HEAL_MARKER), `${JSON.stringify({ movedTo: basename(movedTo), damage })}\n`);
  if (existsSync(file)) {
    moveSqliteFiles(file, movedTo);
    fsyncDir(dir);
  }
  // On a file system short of room the reserve gives itself up here: the salvage writes with its blocks.
  new Reserve(dir);
  const healing = join(dir, HEALING_FILE);
  removeSqliteFiles(healing);
  const { salvaged, gaps } = salvage(movedTo, healing, options.durability, readSeqLease(dir), now);
  fsyncFile(healing);
  removeSqliteFiles(file); // no -wal or -shm of another database may meet the healed one
  moveSqliteFiles(healing, file);
  fsyncDir(dir);
  rmSync(join(dir, HEAL_MARKER));
  fsyncDir(dir);
  return {
    journal: new SqliteJournal(options),
    healed: { damage, movedTo, salvaged, gaps, lost: gaps.reduce((n, g) => n + g.count, 0) },
  };
}

/** The heal a crash interrupted, to be done again; undefined if there is none (or only its marker was left). */
function interruptedHeal(dir: string, file: string): { damage: string; movedTo: string } | undefined {
  const marker = join(dir, HEAL_MARKER);
  if (!existsSync(marker)) return undefined;
  const { movedTo: name, damage } = JSON.parse(readFileSync(marker, 'utf8')) as { movedTo: string; damage: string };
  const movedTo = join(dir, basename(name));
  if (existsSync(file) && existsSync(movedTo)) {
    // Step 3 was done: journal.db is the healed journal.
    rmSync(marker);
    fsyncDir(dir);
    return undefined;
  }
  return { damage: `${damage} (healed again: the first heal was interrupted)`, movedTo };
}

/** What is wrong with the journal file, or undefined when it is sound (or does not exist yet). */
export function findDamage(file: string): string | undefined {
  if (!existsSync(file)) return existsSync(`${file}-wal`) ? 'the WAL is there but the database file is missing' : undefined;
  const head = readHead(file);
  if (head.length === 0) return existsSync(`${file}-wal`) ? 'the database file is empty but a WAL is there' : undefined;
  if (!hasSqliteHeader(head)) return 'the file does not start with a SQLite header';
  const wal = checkWal(`${file}-wal`);
  if (wal?.damage) return wal.damage;
  let db: SqliteDatabase | undefined;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
    // After a clean close the file was last written by a gateway that stopped in order: quick_check reads every
    // page (seconds for a large journal on an SD card), so it is left to the opens after a crash or a power cut.
    // Damage that comes later (the card itself) fails a read or a commit, and the next start checks.
    if (closedCleanly(db)) return undefined;
    const rows = db.pragma('quick_check(3)') as Array<{ quick_check: string }>;
    const problems = rows.map((r) => r.quick_check).filter((r) => r !== 'ok');
    return problems.length > 0 ? `quick_check: ${problems.join('; ')}` : undefined;
  } catch (err: unknown) {
    return `SQLite cannot read it: ${errorMessage(err)}`;
  } finally {
    db?.close();
  }
}

/** Copies what can be read from the damaged journal into a fresh one at `target`; returns what it could not. */
function salvage(
  damaged: string,
  target: string,
  durability: Durability,
  seqLease: number,
  now: number,
): { salvaged: number; gaps: Gap[] } {
  const source = tryOpen(damaged);
  const meta = new Map(
    tryRead(source, (db) =>
      db
        .prepare<[], { key: string; value: number }>(
          "SELECT key, value FROM meta WHERE key IN ('last_seq', 'acked_through', 'welcomed')",
        )
        .all(),
    ).map((r) => [r.key, r.value]),
  );
  const fresh = openSqlite(target, { durability });
  try {
    createJournalSchema(fresh, target);
    const deadLetters = new DeadLetters(new SqliteDeadLetterTable(fresh));
    const insert = fresh.prepare(
      'INSERT OR IGNORE INTO journal (seq, device_id, stream, device_seq, device_time, gateway_time, content_type, payload, pending) VALUES (@seq, @deviceId, @stream, @deviceSeq, @deviceTimeMs, @gatewayTimeMs, @contentType, @payload, @pending)',
    );
    const insertMany = fresh.transaction((rows: JournalRecord[]) => {
      let n = 0;
      // Which upstreams were still waiting for a row is not kept: every upstream gets it (they dedupe by seq).
      for (const row of rows) n += insert.run({ ...row, pending: PENDING_UNKNOWN }).changes;
      return n;
    });
    const ackedThrough = meta.get('acked_through');
    const keep = (seq: number) => ackedThrough === undefined || seq > ackedThrough;
    let salvaged = 0;
    let maxSeq = 0;
    let minSeq = Infinity;

    // Pass 1: through SQLite, stepping over what it cannot read.
    if (source) {
      for (const rows of readAround(source)) {
        const kept = rows.filter((r) => keep(r.seq));
        salvaged += insertMany(kept);
        for (const r of kept) {
          maxSeq = Math.max(maxSeq, r.seq);
          minSeq = Math.min(minSeq, r.seq);
        }
      }
    }
    // Pass 2: the raw pages, for rows SQLite could not reach.
    let pending: JournalRecord[] = [];
    const scan = scanJournalRows(damaged, `${damaged}-wal`, (row) => {
      if (!keep(row.seq)) return;
      minSeq = Math.min(minSeq, row.seq);
      pending.push(row);
      if (pending.length >= READ_CHUNK) {
        salvaged += insertMany(pending);
        pending = [];
      }
    });
    salvaged += insertMany(pending);

    // The small tables, as far as they can be read.
    const knownGaps = tryRead(source, (db) => db.prepare<[], Gap>(SELECT_GAPS).all());
    const insertGap = fresh.prepare(
      `INSERT OR REPLACE INTO gaps (from_seq, to_seq, reason, count, time, pending) VALUES (?, ?, ?, ?, ?, ${PENDING_UNKNOWN})`,
    );
    for (const g of knownGaps) insertGap.run(g.from, g.to, g.reason, g.count, g.timeMs);
    const deviceSeqs = tryRead(source, (db) =>
      db
        .prepare<[], { device_id: string; epoch: string; last_seq: number }>('SELECT device_id, epoch, last_seq FROM device_seqs')
        .all(),
    );
    const insertDeviceSeq = fresh.prepare('INSERT OR REPLACE INTO device_seqs (device_id, epoch, last_seq) VALUES (?, ?, ?)');
    for (const d of deviceSeqs) insertDeviceSeq.run(d.device_id, d.epoch, d.last_seq);
    const letters = tryRead(source, (db) => new SqliteDeadLetterTable(db).list());
    for (const letter of letters) deadLetters.restore(letter);

    // Every seq above the low-water mark that is neither a row now nor already accounted for is lost.
    // The last seq given out: the meta row says it; without it, no seq above the lease was ever given out.
    const lastSeq = Math.max(meta.get('last_seq') ?? seqLease, maxSeq, scan.maxSeq);
    const low = ackedThrough ?? (Number.isFinite(minSeq) ? minSeq - 1 : 0);
    const accounted: SeqRange[] = [...knownGaps, ...letters.map((l) => ({ from: l.seq, to: l.seq }))];
    const gaps = holes(fresh, low, lastSeq, accounted).map((range) => ({
      ...range,
      reason: 'journal-damaged' as const,
      count: range.to - range.from + 1,
      timeMs: now,
    }));
    for (const g of gaps) insertGap.run(g.from, g.to, g.reason, g.count, g.timeMs);
    const setMeta = fresh.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)');
    setMeta.run('last_seq', lastSeq);
    setMeta.run('acked_through', low);
    // A damaged journal has most likely met its backend; without its meta row, assume so (renumbering salvaged
    // rows the backend already holds would duplicate them there).
    setMeta.run('welcomed', meta.get('welcomed') ?? (meta.size === 0 ? 1 : 0));
    return { salvaged, gaps };
  } finally {
    source?.close();
    fresh.close();
  }
}

/**
 * The rows SQLite can read, in seq order, in chunks. Where a read fails it finds the next seq it can read past
 * the damage (doubling steps, then a binary search) and goes on from there.
 */
function* readAround(db: SqliteDatabase): Generator<JournalRecord[]> {
  const select = db.prepare<[number, number], JournalRecord>(
    `SELECT ${RECORD_COLUMNS} FROM journal WHERE seq > ? ORDER BY seq LIMIT ?`,
  );
  const nextSeq = db.prepare<[number], { seq: number }>('SELECT seq FROM journal WHERE seq > ? ORDER BY seq LIMIT 1');
  const readable = (after: number): boolean => {
    try {
      nextSeq.get(after);
      return true;
    } catch {
      return false;
    }
  };
  const maxSeq =
    safe(() => db.prepare<[], { m: number | null }>('SELECT max(seq) AS m FROM journal').get()?.m ?? 0) ??
    Number.MAX_SAFE_INTEGER;
  let after = 0;
  for (;;) {
    let rows: JournalRecord[];
    try {
      rows = select.all(after, READ_CHUNK);
    } catch {
      // Row by row up to the damage, then past it.
      const row = safe(() => select.get(after, 1));
      if (row) {
        yield [row];
        after = row.seq;
        continue;
      }
      const next = safe(() => nextSeq.get(after)?.seq);
      if (next !== undefined) {
        after = next; // its key is readable, its row is not: lost
        continue;
      }
      let step = 1;
      while (after + step < maxSeq && !readable(after + step)) step *= 2;
      if (after + step >= maxSeq && !readable(after + step)) return;
      let bad = after + step / 2;
      let good = after + step;
      while (good - bad > 1) {
        const mid = Math.floor((bad + good) / 2);
        if (readable(mid)) good = mid;
        else bad = mid;
      }
      after = good;
      continue;
    }
    if (rows.length === 0) return;
    yield rows;
    after = rows[rows.length - 1]!.seq;
  }
}

/** Ranges in (low, high] that hold no row of `db`'s journal and are not in `accounted`. */
function holes(db: SqliteDatabase, low: number, high: number, accounted: readonly SeqRange[]): SeqRange[] {
  const missing: SeqRange[] = [];
  let expected = low + 1;
  for (const { seq } of db
    .prepare<[number, number], { seq: number }>('SELECT seq FROM journal WHERE seq > ? AND seq <= ? ORDER BY seq')
    .iterate(low, high)) {
    if (seq > expected) missing.push({ from: expected, to: seq - 1 });
    expected = seq + 1;
  }
  if (expected <= high) missing.push({ from: expected, to: high });
  return subtract(missing, accounted);
}

/** `ranges` minus `minus` (both lists of inclusive ranges). */
export function subtract(ranges: readonly SeqRange[], minus: readonly SeqRange[]): SeqRange[] {
  const cuts = [...minus].sort((a, b) => a.from - b.from);
  const out: SeqRange[] = [];
  for (const range of ranges) {
    let from = range.from;
    for (const cut of cuts) {
      if (cut.to < from || cut.from > range.to) continue;
      if (cut.from > from) out.push({ from, to: cut.from - 1 });
      from = Math.max(from, cut.to + 1);
      if (from > range.to) break;
    }
    if (from <= range.to) out.push({ from, to: range.to });
  }
  return out;
}

function tryOpen(file: string): SqliteDatabase | undefined {
  try {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    db.pragma('busy_timeout = 5000');
    db.prepare('SELECT 1 FROM journal LIMIT 0').all();
    return db;
  } catch {
    return undefined;
  }
}

function tryRead<T>(db: SqliteDatabase | undefined, read: (db: SqliteDatabase) => T[]): T[] {
  if (!db) return [];
  return safe(() => read(db)) ?? [];
}

function safe<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch {
    return undefined;
  }
}

function readHead(file: string): Buffer {
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(100);
    return head.subarray(0, readSync(fd, head, 0, 100, 0));
  } finally {
    closeSync(fd);
  }
}

/** SQLite's own word that the file is damaged (SQLITE_CORRUPT, SQLITE_NOTADB and their extended codes). */
function isCorruption(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && (code.startsWith('SQLITE_CORRUPT') || code.startsWith('SQLITE_NOTADB'));
}
