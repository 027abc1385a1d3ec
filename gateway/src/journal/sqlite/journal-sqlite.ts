/**
 * The SQLite journal.
 *
 * Layout: one database file `journal.db` (plus its `-wal` and `-shm`) in the data folder, in WAL mode, so that
 * a commit appends to the WAL and fsyncs once (durability `power`) or not at all (`process`).
 *
 *   journal(seq INTEGER PRIMARY KEY, device_id, stream, device_seq, device_time, gateway_time, content_type,
 *           payload BLOB, pending)   one row per message; `pending`: the upstreams (bits, see upstreams) it was
 *                              routed to that have not acknowledged it yet; the row goes when none is left
 *   meta(key, value)           'last_seq': the highest seq ever given out; 'acked_through': every row at or
 *                              below it is gone (the low-water mark); 'welcomed': a backend has seen this
 *                              journal (until then its seqs may clash with a lost older journal's: moveAbove)
 *   device_seqs(device_id, epoch, last_seq)   per device-SDK device: the highest deviceSeq of its current
 *                              epoch journaled; a record at or below it is a resend and is left out
 *   gaps(from_seq, to_seq, reason, count, time, pending)   rows let go without the backend having them
 *                              (drop-oldest, too old, salvaged around damage): kept until the upstreams that
 *                              were waiting for them (`pending`) acknowledge the range
 *   upstreams(name, bit)       the bit each configured upstream has in `pending` (stable across restarts and
 *                              configuration changes; an upstream that leaves the configuration must leave no
 *                              row waiting for it, or be named in forgetUpstreams)
 *   dead_letters(...)          see dead-letters.ts
 *   clean_close(snapshot)      one row, written by a clean close and taken by the next open (clean-close.ts)
 *
 * Seqs are given by this class, not by SQLite: a plain rowid restarts at max(rowid) + 1, so it would reuse seqs
 * once every row has been freed, and the backend, which dedupes by (gateway, seq), would drop new data as
 * duplicates. meta.last_seq is written in the same transaction as the rows it covers, so after a crash
 * lastSeq = max(meta.last_seq, max(seq)) and never goes backwards.
 *
 * A seq lease in a file of its own (journal.seq-lease) bounds the seqs given out: before a commit would pass
 * it, the lease moves SEQ_LEASE_BLOCK further and is fsynced; a clean close brings it down to the last seq. It
 * is read only when the database is damaged beyond telling its own last seq (heal.ts), so that a salvaged
 * journal never gives out a seq twice.
 *
 * Routes are decided before the commit (uplink/router.ts, in the journal thread): a commit is given each
 * record's route mask and stores it as the upstreams' bits in `pending`.
 *
 * What is freed when: a commit frees the rows and gaps inside each range an upstream acknowledged (for that
 * upstream: a row goes once no upstream it was routed to waits for it), and the limits drop (recording a gap)
 * the oldest rows beyond maxBytes (drop-oldest) or older than maxAgeMs. Nothing else deletes rows. Freed pages go
 * back to the file system by incremental vacuum, so the file does not stay at its high-water mark; the WAL is
 * checkpointed every reserve's worth of pages and truncated after checkpoints (journal_size_limit). A full file
 * system is survived by the reserve (reserve.ts): given up, it is the room acks need to free rows.
 *
 * The parts, one file each in this folder:
 *   schema.ts              the tables, created or brought up to date at open
 *   clean-close.ts         what a clean close leaves, so that the next open neither counts nor checks every row
 *   upstream-bits.ts       each upstream's bit in `pending`; route masks translated to stored bits
 *   seq-lease.ts           the seq lease
 *   commit-transaction.ts  the commit: dedupe (device-seqs.ts), insert, frees (releases.ts), limits (limits.ts)
 *   backlog.ts             what each upstream waits for, and its cursor
 *   reads.ts               rows and gaps, all or one upstream's
 *   renumber.ts            welcomed, moveAbove
 *   maintenance.ts         incremental vacuum, checkpoint, the disk probe after a full disk
 *   reserve.ts             journal.reserve: room kept back so that acks can free rows on a full disk
 *   dead-letter-table.ts   the dead_letters table
 * and this file, which opens them in order and keeps the journal's view in memory: it moves only once a
 * transaction committed, so a failed commit changes nothing.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { type Clock, type Durability, systemClock } from '@fleetgate/core';
import { mkdirDurable, openSqlite, type SqliteDatabase } from '@fleetgate/core/sqlite';
import {
  NO_LIMITS,
  type CommitResult,
  type Gap,
  type GapReason,
  type Journal,
  type JournalLimits,
  type JournalRecord,
  type JournalStats,
  type NewRecord,
  type Release,
  type UpstreamBacklog,
  type UpstreamJournal,
} from '../journal.ts';
import { Backlogs, countHeld, type HeldRows } from './backlog.ts';
import { leaveCleanClose, takeCleanClose } from './clean-close.ts';
import { CommitTransaction } from './commit-transaction.ts';
import { SqliteDeadLetterTable } from './dead-letter-table.ts';
import { DeviceSeqs } from './device-seqs.ts';
import { Limits } from './limits.ts';
import { Maintenance } from './maintenance.ts';
import { Reads } from './reads.ts';
import { Releases } from './releases.ts';
import { Renumbering } from './renumber.ts';
import { createJournalSchema, JOURNAL_FILE, readMeta, SCHEMA_VERSION } from './schema.ts';
import { SeqLease } from './seq-lease.ts';
import { isDiskFull, Reserve } from './reserve.ts';
import { UpstreamView } from './upstream-view.ts';
import { registerUpstreams, type UpstreamBits } from './upstream-bits.ts';

export { JOURNAL_FILE } from './schema.ts';

export interface SqliteJournalOptions {
  /** The data folder; created if missing. */
  dir: string;
  durability: Durability;
  limits?: JournalLimits;
  /** A hard cap on the database file (PRAGMA max_page_count): past it commits fail as on a full disk. */
  maxFileBytes?: number;
  clock?: Clock;
  /** The upstreams rows are kept for, in configuration order (default: one). */
  upstreams?: readonly string[];
  /** Upstreams no longer configured whose unacknowledged rows may be let go of for them (else the open refuses). */
  forgetUpstreams?: readonly string[];
}

export class SqliteJournal implements Journal {
  readonly file: string;
  readonly db: SqliteDatabase;
  private readonly limits: JournalLimits;
  private readonly held: HeldRows;
  private appendedBytes = 0;
  private freedBytes = 0;
  private readonly dropped: Record<GapReason, number> = { 'journal-full': 0, 'too-old': 0, 'journal-damaged': 0 };
  private readonly bits: UpstreamBits;
  private readonly lease: SeqLease;
  private readonly deviceSeqs: DeviceSeqs;
  private readonly backlogs: Backlogs;
  private readonly reads: Reads;
  private readonly renumbering: Renumbering;
  private readonly maintenance: Maintenance;
  private readonly reserve: Reserve;
  private readonly tx: CommitTransaction;
  private readonly insertGap;
  private readonly views = new Map<number, UpstreamJournal>();
  private letters: SqliteDeadLetterTable | undefined;
  private readonly durability: Durability;

  constructor({
    dir,
    durability,
    limits = NO_LIMITS,
    maxFileBytes,
    clock = systemClock,
    upstreams = ['default'],
    forgetUpstreams = [],
  }: SqliteJournalOptions) {
    this.file = join(dir, JOURNAL_FILE);
    this.limits = limits;
    this.durability = durability;
    mkdirDurable(dir);
    this.reserve = new Reserve(dir);
    const db = (this.db = openSqlite(this.file, { durability }));
    // A file SQLite cannot read fails here; its handle must not stay open (heal.ts moves the file aside).
    try {
      const version = createJournalSchema(db, this.file);
      // The WAL stays within the reserve's size (a checkpoint every that many pages, SQLite's 1,000 at most): on a
      // small file system a WAL of SQLite's default size could hold all the data, and a checkpoint, which must write
      // it into the database file, would then need as much room again: a full disk would never drain.
      const pageSize = db.pragma('page_size', { simple: true }) as number;
      db.pragma(`wal_autocheckpoint = ${Math.max(16, Math.min(1000, Math.floor(this.reserve.bytes / pageSize)))}`);
      db.pragma(`journal_size_limit = ${Math.min(64 << 20, 2 * this.reserve.bytes)}`);
      if (maxFileBytes) db.pragma(`max_page_count = ${Math.max(16, Math.floor(maxFileBytes / pageSize))}`);
      const meta = readMeta(db);
      // After a clean close the counters come from what it left (clean-close.ts), not from counting every row.
      // (A journal brought up from an older schema has none that could be trusted.)
      const clean = takeCleanClose(db, meta, version === SCHEMA_VERSION);
      const registered = registerUpstreams(db, upstreams, forgetUpstreams, this.file, clean !== undefined);
      this.bits = registered.bits;
      this.backlogs = new Backlogs(db, this.bits);
      if (clean && !registered.rowsChanged) {
        this.held = clean.held;
        this.backlogs.restore(clean.backlogs, this.held.ackedThrough);
      } else {
        const { groups, held } = countHeld(db, meta);
        this.held = held;
        this.backlogs.count(groups, this.held.ackedThrough);
      }

      this.lease = new SeqLease(dir);
      this.deviceSeqs = new DeviceSeqs(db);
      this.reads = new Reads(db, this.bits);
      this.renumbering = new Renumbering(db, meta);
      this.maintenance = new Maintenance(db, dir, clock, this.reserve);
      this.tx = new CommitTransaction(db, {
        deviceSeqs: this.deviceSeqs,
        releases: new Releases(db, this.bits),
        limits: new Limits(db, this.bits, limits, clock),
        backlogs: this.backlogs,
        allBits: this.bits.all,
      });
      this.insertGap = db.prepare(
        'INSERT OR REPLACE INTO gaps (from_seq, to_seq, reason, count, time, pending) VALUES (?, ?, ?, ?, ?, ?)',
      );
    } catch (err: unknown) {
      db.close();
      throw err;
    }
    try {
      this.reserve.make();
    } catch {
      // Still short of room: the journal opens full (`full`), and the probe tries again.
    }
  }

  /** Found short of room at open, or SQLITE_FULL since, and no probe has succeeded yet: appends must wait. */
  get full(): boolean {
    return !this.reserve.isHeld;
  }

  get lastSeq(): number {
    return this.held.lastSeq;
  }

  get ackedThrough(): number {
    return this.held.ackedThrough;
  }

  get room(): number {
    return this.limits.maxBytes > 0 ? Math.max(0, this.limits.maxBytes - this.held.payloadBytes) : Infinity;
  }

  get location(): string {
    return this.file;
  }

  commit(records: readonly NewRecord[], releases: readonly Release[] = [], routes?: readonly number[]): CommitResult {
    const { lastSeq, payloadBytes } = this.held;
    for (const { from, to, upstream } of releases) {
      if (!(from >= 1 && to >= from && to <= lastSeq + records.length)) {
        throw new RangeError(`cannot release ${from}..${to}: seqs run from 1 to ${lastSeq + records.length}`);
      }
      if (upstream !== undefined && !(upstream >= 0 && upstream < this.bits.count))
        throw new RangeError(`cannot release for upstream ${upstream}: there are ${this.bits.count}`);
    }
    // With one upstream every row waits for it: routes are not needed, and not kept.
    const routed = this.bits.count > 1 ? routes : undefined;
    if (routed && routed.length !== records.length)
      throw new RangeError(`${routed.length} routes for ${records.length} records: one each`);
    const pending = routed?.map((mask) => this.bits.storedMask(mask));
    this.lease.cover(lastSeq + records.length);
    let result: ReturnType<CommitTransaction['run']>;
    try {
      result = this.tx.run({ records, routes: routed, pending, releases, lastSeq, payloadBytes });
    } catch (err: unknown) {
      // The disk is full: the reserve's blocks are the room the commits that free rows need (reserve.ts).
      if (isDiskFull(err)) this.reserve.giveUp();
      throw err;
    }
    // Only now, after COMMIT returned, does the in-memory view move: a failed commit changes nothing.
    this.held.lastSeq = result.lastSeq;
    this.held.ackedThrough = result.ackedThrough;
    this.held.rows += result.stored.length - result.released - result.droppedRows;
    this.held.payloadBytes += result.storedBytes - result.releasedBytes - result.droppedBytes;
    this.appendedBytes += result.storedBytes;
    this.freedBytes += result.releasedBytes + result.droppedBytes;
    this.backlogs.apply(result.backlogDelta);
    this.deviceSeqs.remember(result.deviceSeqs);
    for (const gap of result.gaps) this.dropped[gap.reason] += gap.count;
    if (result.released + result.droppedRows > 0) this.maintainAfterCommit();
    const { firstSeq, stored, duplicates, released, gaps } = result;
    return {
      firstSeq,
      lastSeq: result.lastSeq,
      stored,
      duplicates,
      released,
      gaps,
      ...(result.routes ? { routes: result.routes } : {}),
    };
  }

  readAfter(
    afterSeq: number,
    maxRecords: number,
    maxBytes: number,
    throughSeq = Number.MAX_SAFE_INTEGER,
    upstream?: number,
  ): JournalRecord[] {
    return this.reads.readAfter(afterSeq, maxRecords, maxBytes, throughSeq, upstream);
  }

  gaps(upstream?: number): Gap[] {
    return this.reads.gaps(upstream);
  }

  /** With one upstream, the journal as it is; with several, the rows routed to that one and its cursor. */
  upstream(index: number): UpstreamJournal {
    if (!(index >= 0 && index < this.bits.count)) throw new RangeError(`no upstream ${index}: there are ${this.bits.count}`);
    let view = this.views.get(index);
    if (view) return view;
    view = new UpstreamView(this, this.bits.count > 1 ? index : undefined);
    this.views.set(index, view);
    return view;
  }

  backlogOf(upstream: number): UpstreamBacklog {
    return this.backlogs.of(upstream, this.held);
  }

  lastDeviceSeq(deviceId: string, epoch: string): number {
    return this.deviceSeqs.lastDeviceSeq(deviceId, epoch);
  }

  /** Records a gap that did not come from a commit (salvage after damage): every upstream hears of it. */
  recordGap(gap: Gap): void {
    this.insertGap.run(gap.from, gap.to, gap.reason, gap.count, gap.timeMs, this.bits.all);
    this.dropped[gap.reason] += gap.count;
  }

  get welcomed(): boolean {
    return this.renumbering.welcomed;
  }

  markWelcomed(): void {
    this.renumbering.markWelcomed();
  }

  moveAbove(to: number): number {
    const delta = this.renumbering.moveAbove(to, this.held.ackedThrough, this.held.lastSeq);
    if (delta === 0) return 0;
    this.held.lastSeq += delta;
    this.held.ackedThrough += delta;
    this.backlogs.resetCursors(this.held.ackedThrough);
    this.lease.cover(this.held.lastSeq);
    return delta;
  }

  get deadLetters(): SqliteDeadLetterTable {
    this.letters ??= new SqliteDeadLetterTable(this.db);
    return this.letters;
  }

  stats(): JournalStats {
    return {
      rows: this.held.rows,
      payloadBytes: this.held.payloadBytes,
      fileBytes: fileSize(this.file) + fileSize(`${this.file}-wal`),
      oldestTimeMs: this.backlogs.oldestTime(this.held),
      lastSeq: this.held.lastSeq,
      ackedThrough: this.held.ackedThrough,
      dropped: { ...this.dropped },
      pendingGaps: this.gaps().length,
      appendedBytes: this.appendedBytes,
      freedBytes: this.freedBytes,
    };
  }

  /**
   * The commit is durable whatever happens here: a vacuum step that fails (the disk is full) is retried by the
   * next commit or maintain(), and must not make the commit look failed.
   */
  private maintainAfterCommit(): void {
    try {
      this.maintenance.vacuumIfWorthIt();
    } catch (err: unknown) {
      if (isDiskFull(err)) this.reserve.giveUp();
    }
  }

  /** Gives back free pages, a step at a time. */
  maintain(): void {
    try {
      this.maintenance.vacuumIfWorthIt();
    } catch (err: unknown) {
      if (isDiskFull(err)) this.reserve.giveUp();
      throw err;
    }
    // `process`: commits are not fsynced (synchronous=NORMAL), only checkpoints fsync the WAL. One a second
    // bounds what a power cut takes to the last second's commits (README, "What the acknowledgement means").
    if (this.durability === 'process') this.maintenance.syncWal();
  }

  /** Moves the WAL into the database file and truncates it. */
  checkpoint(): void {
    this.maintenance.checkpoint();
  }

  probe(): void {
    this.maintenance.probe();
  }

  /**
   * Closes the database, leaving the counters for a constant-time next open (clean-close.ts); the seq lease is
   * brought down to the last seq, so that after a clean stop it is exact.
   */
  close(): void {
    if (!this.db.open) return;
    try {
      const { rows, payloadBytes } = this.held;
      leaveCleanClose(this.db, { rows, payloadBytes, backlogs: this.backlogs.snapshot(this.held) });
    } catch {
      // A journal that cannot take this last write (a full disk) is counted and checked at its next open instead.
    }
    this.db.close();
    this.lease.settle(this.held.lastSeq);
  }
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
