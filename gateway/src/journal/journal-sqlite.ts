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
 *   gaps(from_seq, to_seq, reason, count, time)   rows let go without the backend having them (drop-oldest,
 *                              too old, salvaged around damage): kept until the backend acknowledges the range
 *   upstreams(name, bit)       the bit each configured upstream has in `pending` (stable across restarts and
 *                              configuration changes; an upstream that leaves the configuration must leave no
 *                              row waiting for it, or be named in forgetUpstreams)
 *   dead_letters(...)          see dead-letters.ts
 *
 * Seqs are given by this class, not by SQLite: a plain rowid restarts at max(rowid) + 1, so it would reuse seqs
 * once every row has been freed, and the backend, which dedupes by (gateway, seq), would drop new data as
 * duplicates. meta.last_seq is written in the same transaction as the rows it covers, so after a crash
 * lastSeq = max(meta.last_seq, max(seq)) and never goes backwards.
 *
 * A seq lease in a file of its own (journal.seq-lease) bounds the seqs given out: before a commit would pass
 * it, the lease moves SEQ_LEASE_BLOCK further and is fsynced; a clean close brings it down to the last seq. It
 * is read only when the database is damaged
 * beyond telling its own last seq (heal.ts), so that a salvaged journal never gives out a seq twice.
 *
 * What is freed when: a commit frees the rows and gaps inside each range the backend acknowledged, and the
 * limits drop (recording a gap) the oldest rows beyond maxBytes (drop-oldest) or older than maxAgeMs. Nothing
 * else deletes rows. Freed pages go back to the file system by incremental vacuum, so the file does not stay at
 * its high-water mark; the WAL is truncated after checkpoints (journal_size_limit).
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, statfsSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { type Clock, ConfigError, type Durability, FleetgateError, systemClock } from '@fleetgate/core';
import { BulkInsert, openSqlite, type SqliteDatabase } from '@fleetgate/core/sqlite';
import {
  MAX_UPSTREAMS,
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
  type SeqRange,
  type UpstreamBacklog,
} from './journal.ts';

const SCHEMA_VERSION = 5;
/** `pending` of a row whose upstreams are not known (salvaged from a damaged journal): every upstream gets it. */
export const PENDING_UNKNOWN = -1;
export const JOURNAL_FILE = 'journal.db';
export const SEQ_LEASE_FILE = 'journal.seq-lease';
/** Every gap, as Gaps, in seq order. */
export const SELECT_GAPS = 'SELECT from_seq AS "from", to_seq AS "to", reason, count, time AS timeMs FROM gaps ORDER BY from_seq';
/** The journal table's columns as a JournalRecord's fields. */
export const RECORD_COLUMNS = `seq, device_id AS deviceId, stream, device_seq AS deviceSeq, device_time AS deviceTimeMs,
  gateway_time AS gatewayTimeMs, content_type AS contentType, payload`;
/** Seqs a lease covers ahead: one small fsynced write per this many records. */
const SEQ_LEASE_BLOCK = 10_000;
/** After dropping for maxBytes, the journal holds at most this share of it: drops come in chunks, not per commit. */
const DROP_TO = 0.95;
/** Free space the file system must have before appends resume after a full disk. */
const PROBE_FREE_BYTES = 16 << 20;
class ProbeRollback extends Error {}
/** Free pages above which a commit is followed by an incremental vacuum. */
const VACUUM_FREE_PAGES = 256;
/** Pages given back per step, and steps at most this often: ~2 MB at ~5 a second, so no step holds up a commit long. */
const VACUUM_STEP_PAGES = 512;
const VACUUM_EVERY_MS = 200;

/** What one transaction did; the bytes are kept out of CommitResult, only the counters need them. */
interface TxOutcome extends CommitResult {
  storedBytes: number;
  releasedBytes: number;
  droppedRows: number;
  droppedBytes: number;
  ackedThrough: number;
  /** With several upstreams: rows and bytes each upstream stopped (or started) waiting for. */
  backlogDelta: Array<{ rows: number; bytes: number }> | undefined;
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
  limits?: JournalLimits;
  /** A hard cap on the database file (PRAGMA max_page_count): past it commits fail as on a full disk. */
  maxFileBytes?: number;
  clock?: Clock;
  /** The upstreams rows are kept for, in configuration order (default: one). */
  upstreams?: readonly string[];
  /** Upstreams no longer configured whose unacknowledged rows may be let go of for them (else the open refuses). */
  forgetUpstreams?: readonly string[];
  /** With several upstreams: which a record goes to (bit i: the i-th of `upstreams`; never 0). Default: all. */
  route?: (record: NewRecord) => number;
}

export class SqliteJournal implements Journal {
  readonly file: string;
  private readonly dir: string;
  readonly db: SqliteDatabase;
  private readonly limits: JournalLimits;
  private readonly clock: Clock;
  private last: number;
  private lease: number;
  private wasWelcomed: boolean;
  private lastVacuum = 0;
  private acked: number;
  private rows: number;
  private payloadBytes: number;
  private readonly dropped: Record<GapReason, number> = { 'journal-full': 0, 'too-old': 0, 'journal-damaged': 0 };
  private insertingFrom = 0;
  /** Stored `pending` of each row being inserted (several upstreams), else undefined: every upstream. */
  private insertingPending: number[] | undefined;
  private appendedBytes = 0;
  private freedBytes = 0;
  /** Bit of each configured upstream in `pending`, and all of them. */
  private readonly bits: number[];
  private readonly allBits: number;
  private readonly route: ((record: NewRecord) => number) | undefined;
  /** Route mask (configuration indexes) -> stored bits. */
  private readonly storedMasks = new Map<number, number>();
  /** Several upstreams: rows and bytes each waits for, and its cursor (every row at or below it acked by it). */
  private readonly backlog: Array<{ rows: number; bytes: number; cursor: number }>;
  /** device_seqs rows read so far (devices are few; each is read from disk once). */
  private readonly deviceSeqs = new Map<string, DeviceSeq>();
  private readonly statements;
  private readonly insert: BulkInsert<NewRecord>;
  private readonly probeTx: () => void;
  private readonly commitTx: (records: readonly NewRecord[], releases: readonly SeqRange[]) => TxOutcome;

  constructor({
    dir,
    durability,
    limits = NO_LIMITS,
    maxFileBytes,
    clock = systemClock,
    upstreams = ['default'],
    forgetUpstreams = [],
    route,
  }: SqliteJournalOptions) {
    this.dir = dir;
    this.file = join(dir, JOURNAL_FILE);
    this.limits = limits;
    this.clock = clock;
    this.db = openSqlite(this.file, { durability });
    createJournalSchema(this.db, this.file);
    this.db.pragma('journal_size_limit = 67108864');
    if (maxFileBytes)
      this.db.pragma(
        `max_page_count = ${Math.max(16, Math.floor(maxFileBytes / (this.db.pragma('page_size', { simple: true }) as number)))}`,
      );
    this.bits = registerUpstreams(this.db, upstreams, forgetUpstreams, this.file);
    this.allBits = this.bits.reduce((all, bit) => all | bit, 0);
    this.route = this.bits.length > 1 ? route : undefined;

    // Row i of a commit gets seq firstSeq + i (the commit sets this.insertingFrom first).
    this.insert = new BulkInsert<NewRecord>(
      this.db,
      'INSERT INTO journal (seq, device_id, stream, device_seq, device_time, gateway_time, content_type, payload, pending)',
      9,
      (r, p, o, i) => {
        p[o] = this.insertingFrom + i;
        p[o + 1] = r.deviceId;
        p[o + 2] = r.stream;
        p[o + 3] = r.deviceSeq;
        p[o + 4] = r.deviceTimeMs;
        p[o + 5] = r.gatewayTimeMs;
        p[o + 6] = r.contentType;
        p[o + 7] = r.payload;
        p[o + 8] = this.insertingPending ? this.insertingPending[i] : this.allBits;
      },
    );
    const db = this.db;
    this.statements = {
      setMeta: db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)'),
      selectAfter: db.prepare<[number, number, number], JournalRecord>(
        `SELECT ${RECORD_COLUMNS} FROM journal WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?`,
      ),
      measureRange: db.prepare<[number, number], { rows: number; bytes: number }>(
        'SELECT count(*) AS rows, coalesce(sum(length(payload)), 0) AS bytes FROM journal WHERE seq BETWEEN ? AND ?',
      ),
      deleteRange: db.prepare('DELETE FROM journal WHERE seq BETWEEN ? AND ?'),
      deleteGapsIn: db.prepare('DELETE FROM gaps WHERE from_seq >= ? AND to_seq <= ?'),
      insertGap: db.prepare(
        'INSERT OR REPLACE INTO gaps (from_seq, to_seq, reason, count, time, pending) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      selectGaps: db.prepare<[], Gap>(SELECT_GAPS),
      minSeq: db.prepare<[], { seq: number | null }>('SELECT min(seq) AS seq FROM journal'),
      oldest: db.prepare<[], { seq: number; bytes: number; t: number; pending: number }>(
        'SELECT seq, length(payload) AS bytes, gateway_time AS t, pending FROM journal ORDER BY seq',
      ),
      // Several upstreams: reading, freeing and measuring for one of them (its bit).
      selectAfterFor: db.prepare<[number, number, number, number], JournalRecord>(
        `SELECT ${RECORD_COLUMNS} FROM journal WHERE seq > ? AND seq <= ? AND (pending & ?) != 0 ORDER BY seq LIMIT ?`,
      ),
      measureRangeFor: db.prepare<
        { from: number; to: number; bit: number },
        { rows: number; bytes: number; freedRows: number; freedBytes: number }
      >(
        `SELECT count(*) AS rows, coalesce(sum(length(payload)), 0) AS bytes, coalesce(sum(pending = @bit), 0) AS freedRows,
           coalesce(sum(CASE WHEN pending = @bit THEN length(payload) ELSE 0 END), 0) AS freedBytes
         FROM journal WHERE seq BETWEEN @from AND @to AND (pending & @bit) != 0`,
      ),
      measureRangeByPending: db.prepare<[number, number], { pending: number; rows: number; bytes: number }>(
        'SELECT pending, count(*) AS rows, coalesce(sum(length(payload)), 0) AS bytes FROM journal WHERE seq BETWEEN ? AND ? GROUP BY pending',
      ),
      deleteRangeFor: db.prepare<{ from: number; to: number; bit: number }>(
        'DELETE FROM journal WHERE seq BETWEEN @from AND @to AND pending = @bit',
      ),
      clearRangeFor: db.prepare<{ from: number; to: number; bit: number }>(
        'UPDATE journal SET pending = pending & ~@bit WHERE seq BETWEEN @from AND @to AND (pending & @bit) != 0',
      ),
      clearGapsFor: db.prepare<{ from: number; to: number; bit: number }>(
        'UPDATE gaps SET pending = pending & ~@bit WHERE from_seq >= @from AND to_seq <= @to',
      ),
      deleteClearedGaps: db.prepare<[number, number]>('DELETE FROM gaps WHERE from_seq >= ? AND to_seq <= ? AND pending = 0'),
      selectGapsFor: db.prepare<[number], Gap>(`${SELECT_GAPS.replace(' ORDER BY', ' WHERE (pending & ?) != 0 ORDER BY')}`),
      firstPendingFor: db.prepare<[number, number], { seq: number; t: number }>(
        'SELECT seq, gateway_time AS t FROM journal WHERE seq > ? AND (pending & ?) != 0 ORDER BY seq LIMIT 1',
      ),
      oldestTime: db.prepare<[], { t: number }>('SELECT gateway_time AS t FROM journal ORDER BY seq LIMIT 1'),
      selectDeviceSeq: db.prepare<[string], DeviceSeq>('SELECT epoch, last_seq AS lastSeq FROM device_seqs WHERE device_id = ?'),
      upsertDeviceSeq: db.prepare('INSERT OR REPLACE INTO device_seqs (device_id, epoch, last_seq) VALUES (?, ?, ?)'),
    };

    const meta = new Map(
      db
        .prepare<[], { key: string; value: number }>('SELECT key, value FROM meta')
        .all()
        .map((row) => [row.key, row.value]),
    );
    const byPending = db
      .prepare<[], { pending: number; rows: number; bytes: number; maxSeq: number; minSeq: number }>(
        'SELECT pending, count(*) AS rows, coalesce(sum(length(payload)), 0) AS bytes, max(seq) AS maxSeq, min(seq) AS minSeq FROM journal GROUP BY pending',
      )
      .all();
    const held = { rows: 0, bytes: 0, maxSeq: null as number | null, minSeq: null as number | null };
    this.backlog = this.bits.map(() => ({ rows: 0, bytes: 0, cursor: 0 }));
    for (const group of byPending) {
      held.rows += group.rows;
      held.bytes += group.bytes;
      held.maxSeq = Math.max(held.maxSeq ?? 0, group.maxSeq);
      held.minSeq = Math.min(held.minSeq ?? Infinity, group.minSeq);
      this.bits.forEach((bit, i) => {
        if ((group.pending & bit) === 0) return;
        this.backlog[i]!.rows += group.rows;
        this.backlog[i]!.bytes += group.bytes;
      });
    }
    this.last = Math.max(meta.get('last_seq') ?? 0, held.maxSeq ?? 0, meta.get('acked_through') ?? 0);
    this.acked = held.minSeq === null ? this.last : held.minSeq - 1;
    this.lease = readSeqLease(dir);
    this.wasWelcomed = meta.get('welcomed') === 1;
    this.rows = held.rows;
    this.payloadBytes = held.bytes;
    for (const b of this.backlog) b.cursor = this.acked;

    const probeRow = db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('probe', zeroblob(65536))");
    this.probeTx = db.transaction(() => {
      probeRow.run();
      throw new ProbeRollback();
    });

    this.commitTx = db.transaction((records: readonly NewRecord[], releases: readonly SeqRange[]): TxOutcome => {
      const deviceSeqs = new Map<string, DeviceSeq>();
      const stored = records.some((r) => r.deviceSeq > 0) ? records.filter((r) => this.isNew(r, deviceSeqs)) : records;
      for (const [deviceId, { epoch, lastSeq }] of deviceSeqs) this.statements.upsertDeviceSeq.run(deviceId, epoch, lastSeq);
      const firstSeq = this.last + 1;
      const lastSeq = this.last + stored.length;
      const backlogDelta = this.route ? this.bits.map(() => ({ rows: 0, bytes: 0 })) : undefined;
      const routes = this.route ? stored.map((r) => this.route!(r)) : undefined;
      this.insertingFrom = firstSeq;
      this.insertingPending = routes?.map((mask) => this.storedMask(mask));
      this.insert.run(stored);
      this.insertingPending = undefined;
      let storedBytes = 0;
      for (const r of stored) storedBytes += r.payload.length;
      if (routes && backlogDelta) {
        stored.forEach((r, k) => {
          for (let i = 0; i < backlogDelta.length; i++) {
            if ((routes[k]! & (1 << i)) === 0) continue;
            backlogDelta[i]!.rows++;
            backlogDelta[i]!.bytes += r.payload.length;
          }
        });
      }
      if (stored.length > 0) this.statements.setMeta.run('last_seq', lastSeq);

      let released = 0;
      let releasedBytes = 0;
      for (const release of releases) {
        const freed = this.free(release, backlogDelta);
        released += freed.rows;
        releasedBytes += freed.bytes;
      }

      const gaps = this.enforceLimits(this.payloadBytes + storedBytes - releasedBytes, backlogDelta);
      const droppedRows = gaps.reduce((n, g) => n + g.count, 0);
      const droppedBytes = gaps.reduce((n, g) => n + (g as Gap & { bytes: number }).bytes, 0);
      const min = this.statements.minSeq.get()!.seq;
      const ackedThrough = min === null ? lastSeq : min - 1;
      this.statements.setMeta.run('acked_through', ackedThrough);
      return {
        firstSeq,
        lastSeq,
        stored,
        duplicates: records.length - stored.length,
        released,
        gaps: gaps.map(({ from, to, reason, count, timeMs }) => ({ from, to, reason, count, timeMs })),
        ...(routes ? { routes } : {}),
        storedBytes,
        releasedBytes,
        droppedRows,
        droppedBytes,
        ackedThrough,
        deviceSeqs,
        backlogDelta,
      };
    });
  }

  get lastSeq(): number {
    return this.last;
  }

  get ackedThrough(): number {
    return this.acked;
  }

  get room(): number {
    return this.limits.maxBytes > 0 ? Math.max(0, this.limits.maxBytes - this.payloadBytes) : Infinity;
  }

  commit(records: readonly NewRecord[], releases: readonly Release[] = []): CommitResult {
    for (const { from, to, upstream } of releases) {
      if (!(from >= 1 && to >= from && to <= this.last + records.length)) {
        throw new RangeError(`cannot release ${from}..${to}: seqs run from 1 to ${this.last + records.length}`);
      }
      if (upstream !== undefined && !(upstream >= 0 && upstream < this.bits.length))
        throw new RangeError(`cannot release for upstream ${upstream}: there are ${this.bits.length}`);
    }
    if (this.last + records.length > this.lease) {
      this.lease = this.last + records.length + SEQ_LEASE_BLOCK;
      writeSeqLease(this.dir, this.lease);
    }
    const result = this.commitTx(records, releases);
    // Only now, after COMMIT returned, does the in-memory view move: a failed commit changes nothing.
    this.last = result.lastSeq;
    this.acked = result.ackedThrough;
    this.rows += result.stored.length - result.released - result.droppedRows;
    this.payloadBytes += result.storedBytes - result.releasedBytes - result.droppedBytes;
    this.appendedBytes += result.storedBytes;
    this.freedBytes += result.releasedBytes + result.droppedBytes;
    result.backlogDelta?.forEach((delta, i) => {
      this.backlog[i]!.rows += delta.rows;
      this.backlog[i]!.bytes += delta.bytes;
    });
    for (const [deviceId, state] of result.deviceSeqs) this.deviceSeqs.set(deviceId, state);
    for (const gap of result.gaps) this.dropped[gap.reason] += gap.count;
    if (result.released + result.droppedRows > 0) this.vacuumIfWorthIt();
    const { firstSeq, lastSeq, stored, duplicates, released, gaps, routes } = result;
    return { firstSeq, lastSeq, stored, duplicates, released, gaps, ...(routes ? { routes } : {}) };
  }

  /**
   * Reads as readAfter, but only the rows routed to `upstream` (its index in the configuration) that it has not
   * acknowledged; with one upstream, every row.
   */
  readAfter(
    afterSeq: number,
    maxRecords: number,
    maxBytes: number,
    throughSeq = Number.MAX_SAFE_INTEGER,
    upstream?: number,
  ): JournalRecord[] {
    if (maxRecords <= 0) return [];
    const out: JournalRecord[] = [];
    let bytes = 0;
    const rows =
      upstream !== undefined && this.bits.length > 1
        ? this.statements.selectAfterFor.iterate(afterSeq, throughSeq, this.bits[upstream]!, maxRecords)
        : this.statements.selectAfter.iterate(afterSeq, throughSeq, maxRecords);
    for (const row of rows) {
      if (out.length > 0 && bytes + row.payload.length > maxBytes) break;
      out.push(row);
      bytes += row.payload.length;
    }
    return out;
  }

  lastDeviceSeq(deviceId: string, epoch: string): number {
    const state = this.deviceSeq(deviceId);
    return state && state.epoch === epoch ? state.lastSeq : 0;
  }

  /** Gaps not yet acknowledged (by `upstream`, if given: the gaps it still has to hear of). */
  gaps(upstream?: number): Gap[] {
    return upstream !== undefined && this.bits.length > 1
      ? this.statements.selectGapsFor.all(this.bits[upstream]!)
      : this.statements.selectGaps.all();
  }

  /** Records a gap that did not come from a commit (salvage after damage): every upstream hears of it. */
  recordGap(gap: Gap): void {
    this.statements.insertGap.run(gap.from, gap.to, gap.reason, gap.count, gap.timeMs, this.allBits);
    this.dropped[gap.reason] += gap.count;
  }

  /**
   * What the journal holds for `upstream`: rows routed to it and not acknowledged by it, and its cursor. The
   * cursor only moves forward (rows never gain upstreams), so finding it again reads each row about once.
   */
  backlogOf(upstream: number): UpstreamBacklog {
    if (this.bits.length === 1) {
      return {
        rows: this.rows,
        payloadBytes: this.payloadBytes,
        ackedThrough: this.acked,
        oldestTimeMs: this.rows > 0 ? (this.statements.oldestTime.get()?.t ?? null) : null,
      };
    }
    const backlog = this.backlog[upstream]!;
    if (backlog.rows === 0) {
      backlog.cursor = this.last;
      return { rows: 0, payloadBytes: 0, ackedThrough: this.last, oldestTimeMs: null };
    }
    const first = this.statements.firstPendingFor.get(Math.max(backlog.cursor, this.acked), this.bits[upstream]!);
    backlog.cursor = first ? first.seq - 1 : this.last;
    return { rows: backlog.rows, payloadBytes: backlog.bytes, ackedThrough: backlog.cursor, oldestTimeMs: first?.t ?? null };
  }

  stats(): JournalStats {
    return {
      rows: this.rows,
      payloadBytes: this.payloadBytes,
      fileBytes: fileSize(this.file) + fileSize(`${this.file}-wal`),
      oldestTimeMs: this.rows > 0 ? (this.statements.oldestTime.get()?.t ?? null) : null,
      lastSeq: this.last,
      ackedThrough: this.acked,
      dropped: { ...this.dropped },
      pendingGaps: this.gaps().length,
      appendedBytes: this.appendedBytes,
      freedBytes: this.freedBytes,
    };
  }

  /**
   * Does the journal take writes again after SQLITE_FULL? Throws if not. The file system must have room for a
   * few batches, and the database must be able to grow by a batch's worth (a 64 KiB row, written and rolled back: nothing
   * stays, but pages must be found for it, which is where a max_page_count cap refuses).
   */
  probe(): void {
    const fs = statfsSync(this.dir);
    const free = fs.bavail * fs.bsize;
    if (free < PROBE_FREE_BYTES)
      throw Object.assign(new Error(`${free} bytes free on the journal's file system`), { code: 'SQLITE_FULL' });
    try {
      this.probeTx();
    } catch (err: unknown) {
      if (!(err instanceof ProbeRollback)) throw err;
    }
  }

  /** Has a backend ever welcomed this journal? (A fresh one has not: its seqs may clash with an older journal's.) */
  get welcomed(): boolean {
    return this.wasWelcomed;
  }

  markWelcomed(): void {
    if (this.wasWelcomed) return;
    this.statements.setMeta.run('welcomed', 1);
    this.wasWelcomed = true;
  }

  /**
   * Moves every unacked row and gap above `to`, keeping their order: the backend already holds seqs up to `to`
   * that this journal did not give out (its data folder was lost, or restored from an old copy), and would take
   * the rows for resends of what it holds. Returns how far they moved (0 if nothing is at or below `to`).
   */
  moveAbove(to: number): number {
    if (to <= this.acked) return 0;
    const delta = to - this.acked;
    const from = this.acked;
    this.db.transaction(() => {
      // Through negative seqs: a primary key moved in place would collide with itself.
      this.db.prepare('UPDATE journal SET seq = -seq WHERE seq > ?').run(from);
      this.db.prepare('UPDATE journal SET seq = -seq + ? WHERE seq < 0').run(delta);
      this.db.prepare('UPDATE gaps SET from_seq = -from_seq, to_seq = -to_seq WHERE from_seq > ?').run(from);
      this.db.prepare('UPDATE gaps SET from_seq = -from_seq + ?, to_seq = -to_seq + ? WHERE from_seq < 0').run(delta, delta);
      this.statements.setMeta.run('last_seq', this.last + delta);
      this.statements.setMeta.run('acked_through', this.acked + delta);
    })();
    this.last += delta;
    this.acked += delta;
    for (const b of this.backlog) b.cursor = this.acked;
    if (this.last > this.lease) {
      this.lease = this.last + SEQ_LEASE_BLOCK;
      writeSeqLease(this.dir, this.lease);
    }
    return delta;
  }

  /** Housekeeping while idle (called every second or so): gives back free pages, a step at a time. */
  maintain(): void {
    this.vacuumIfWorthIt();
  }

  /** Moves the WAL into the database file and truncates it (for a clean stop). */
  checkpoint(): void {
    this.db.pragma('wal_checkpoint(TRUNCATE)');
  }

  /** Closes the database; the seq lease is brought down to the last seq, so that after a clean stop it is exact. */
  close(): void {
    if (!this.db.open) return;
    this.db.close();
    if (this.lease > this.last) {
      try {
        writeSeqLease(this.dir, this.last);
        this.lease = this.last;
      } catch {
        // A lease ahead of the last seq is still a valid bound.
      }
    }
  }

  /** Drops (with gaps) the rows beyond the limits; inside the commit's transaction. */
  private enforceLimits(payloadBytes: number, backlogDelta: TxOutcome['backlogDelta']): Array<Gap & { bytes: number }> {
    const gaps: Array<Gap & { bytes: number }> = [];
    const now = this.clock.now();
    const { maxAgeMs, maxBytes, policy } = this.limits;
    if (maxAgeMs > 0) {
      const gap = this.dropPrefix('too-old', (row) => row.t < now - maxAgeMs, backlogDelta);
      if (gap) {
        gaps.push(gap);
        payloadBytes -= gap.bytes;
      }
    }
    if (maxBytes > 0 && policy === 'drop-oldest' && payloadBytes > maxBytes) {
      let excess = payloadBytes - maxBytes * DROP_TO;
      const gap = this.dropPrefix(
        'journal-full',
        (row) => {
          if (excess <= 0) return false;
          excess -= row.bytes;
          return true;
        },
        backlogDelta,
      );
      if (gap) gaps.push(gap);
    }
    return gaps;
  }

  /**
   * Deletes the oldest rows while `take(row)` says so; records and returns the gap, which goes to the upstreams
   * that were still waiting for any of those rows.
   */
  private dropPrefix(
    reason: GapReason,
    take: (row: { seq: number; bytes: number; t: number }) => boolean,
    backlogDelta: TxOutcome['backlogDelta'],
  ): (Gap & { bytes: number }) | undefined {
    let from = 0;
    let to = 0;
    let count = 0;
    let bytes = 0;
    let pending = 0;
    for (const row of this.statements.oldest.iterate()) {
      if (!take(row)) break;
      if (count === 0) from = row.seq;
      to = row.seq;
      count++;
      bytes += row.bytes;
      pending |= row.pending;
      backlogDelta?.forEach((delta, i) => {
        if ((row.pending & this.bits[i]!) === 0) return;
        delta.rows--;
        delta.bytes -= row.bytes;
      });
    }
    if (count === 0) return undefined;
    this.statements.deleteRange.run(from, to);
    const gap = { from, to, reason, count, timeMs: this.clock.now(), bytes };
    this.statements.insertGap.run(from, to, reason, count, gap.timeMs, pending & this.allBits);
    return gap;
  }

  /**
   * Frees a range some upstream acknowledged (inside the commit's transaction): for that upstream only, so a row
   * goes once no upstream waits for it; without an upstream, for every one. Returns the rows deleted and bytes.
   */
  private free({ from, to, upstream }: Release, backlogDelta: TxOutcome['backlogDelta']): { rows: number; bytes: number } {
    if (!backlogDelta) {
      const measured = this.statements.measureRange.get(from, to)!;
      this.statements.deleteRange.run(from, to);
      this.statements.deleteGapsIn.run(from, to);
      return measured;
    }
    if (upstream === undefined) {
      let rows = 0;
      let bytes = 0;
      for (const group of this.statements.measureRangeByPending.all(from, to)) {
        rows += group.rows;
        bytes += group.bytes;
        this.bits.forEach((bit, i) => {
          if ((group.pending & bit) === 0) return;
          backlogDelta[i]!.rows -= group.rows;
          backlogDelta[i]!.bytes -= group.bytes;
        });
      }
      this.statements.deleteRange.run(from, to);
      this.statements.deleteGapsIn.run(from, to);
      return { rows, bytes };
    }
    const range = { from, to, bit: this.bits[upstream]! };
    const measured = this.statements.measureRangeFor.get(range)!;
    this.statements.deleteRangeFor.run(range);
    if (measured.freedRows < measured.rows) this.statements.clearRangeFor.run(range);
    this.statements.clearGapsFor.run(range);
    this.statements.deleteClearedGaps.run(from, to);
    backlogDelta[upstream]!.rows -= measured.rows;
    backlogDelta[upstream]!.bytes -= measured.bytes;
    return { rows: measured.freedRows, bytes: measured.freedBytes };
  }

  /** The stored `pending` of a route mask (bit i: the i-th configured upstream). */
  private storedMask(mask: number): number {
    let stored = this.storedMasks.get(mask);
    if (stored === undefined) {
      stored = 0;
      for (let i = 0; i < this.bits.length; i++) if (mask & (1 << i)) stored |= this.bits[i]!;
      if (stored === 0) throw new RangeError(`route mask ${mask} names no configured upstream`);
      this.storedMasks.set(mask, stored);
    }
    return stored;
  }

  /**
   * Rows are freed oldest first, so free pages gather at the front of the file and pages in use at its end: giving
   * the free ones back moves the used ones into the holes. Worth it when there is much to give back and little to
   * move, i.e. once a backlog has (nearly) drained; during a drain the free pages are simply reused.
   */
  private vacuumIfWorthIt(): void {
    const now = this.clock.now();
    if (now - this.lastVacuum < VACUUM_EVERY_MS) return;
    this.lastVacuum = now;
    const free = this.db.pragma('freelist_count', { simple: true }) as number;
    if (free <= VACUUM_FREE_PAGES) return;
    const used = (this.db.pragma('page_count', { simple: true }) as number) - free;
    if (used <= free / 8) this.db.pragma(`incremental_vacuum(${VACUUM_STEP_PAGES})`);
  }

  private deviceSeq(deviceId: string): DeviceSeq | undefined {
    let state = this.deviceSeqs.get(deviceId);
    if (state === undefined) {
      state = this.statements.selectDeviceSeq.get(deviceId);
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
}

/** Creates the journal's tables in `db`, or brings an older journal up to date. */
export function createJournalSchema(db: SqliteDatabase, file: string): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SCHEMA_VERSION) {
    throw new JournalError(`${file} has journal schema ${version}; this gateway knows up to ${SCHEMA_VERSION} (downgrade?)`);
  }
  // Incremental vacuum takes effect only when the file is rewritten (VACUUM) once the page size is fixed, which
  // switching to WAL already does: a fresh file is empty and rewritten in no time, an older one once.
  db.pragma('auto_vacuum = INCREMENTAL');
  if ((db.pragma('auto_vacuum', { simple: true }) as number) !== 2) db.exec('VACUUM');
  if (version === SCHEMA_VERSION) return;
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
}

/**
 * Gives each configured upstream its bit in `pending`, keeping the bits upstreams already had. An upstream no
 * longer configured must leave no row waiting for it unless named in `forget`; rows salvaged without knowing
 * their upstreams (PENDING_UNKNOWN) go to every configured one. Returns the bits in configuration order.
 */
function registerUpstreams(db: SqliteDatabase, names: readonly string[], forget: readonly string[], file: string): number[] {
  if (names.length === 0 || names.length > MAX_UPSTREAMS)
    throw new RangeError(`${names.length} upstreams: 1 to ${MAX_UPSTREAMS} can be configured`);
  return db.transaction(() => {
    const known = new Map(
      db
        .prepare<[], { name: string; bit: number }>('SELECT name, bit FROM upstreams')
        .all()
        .map((r) => [r.name, r.bit]),
    );
    // The unnamed upstream of an older journal is the first configured one.
    const legacy = known.get('');
    if (legacy !== undefined && !known.has(names[0]!)) {
      db.prepare("UPDATE upstreams SET name = ? WHERE name = ''").run(names[0]!);
      known.delete('');
      known.set(names[0]!, legacy);
    }
    for (const [name, bit] of known) {
      if (names.includes(name)) continue;
      const waiting = db
        .prepare<[number], { n: number }>('SELECT count(*) AS n FROM journal WHERE (pending & ?) != 0')
        .get(bit)!.n;
      if (waiting > 0 && !forget.includes(name)) {
        throw new ConfigError(
          'forget-upstreams',
          `${file} holds ${waiting} rows that upstream "${name || '(the one before upstreams had names)'}" has not acknowledged, and it is no longer configured: ` +
            `configure it again until it has caught up, or name it in forget-upstreams to let those rows go for it`,
        );
      }
      db.prepare('UPDATE journal SET pending = pending & ~? WHERE (pending & ?) != 0').run(bit, bit);
      db.prepare('UPDATE gaps SET pending = pending & ~? WHERE (pending & ?) != 0').run(bit, bit);
      db.exec('DELETE FROM journal WHERE pending = 0; DELETE FROM gaps WHERE pending = 0');
      db.prepare('DELETE FROM upstreams WHERE name = ?').run(name);
      known.delete(name);
    }
    const used = new Set(known.values());
    const bits = names.map((name) => {
      let bit = known.get(name);
      if (bit === undefined) {
        bit = 1;
        while (used.has(bit)) bit <<= 1;
        used.add(bit);
        db.prepare('INSERT INTO upstreams (name, bit) VALUES (?, ?)').run(name, bit);
      }
      return bit;
    });
    const all = bits.reduce((a, b) => a | b, 0);
    db.prepare('UPDATE journal SET pending = ? WHERE pending < 0').run(all);
    db.prepare('UPDATE gaps SET pending = ? WHERE pending < 0').run(all);
    return bits;
  })();
}

/** The seq lease kept in `dir` (0 when there is none). */
export function readSeqLease(dir: string): number {
  try {
    const value = Number(readFileSync(join(dir, SEQ_LEASE_FILE), 'utf8').trim());
    return Number.isSafeInteger(value) && value > 0 ? value : 0;
  } catch {
    return 0;
  }
}

/** Writes the lease so that a crash leaves the old one or the new one, never a torn one. */
function writeSeqLease(dir: string, lease: number): void {
  const file = join(dir, SEQ_LEASE_FILE);
  const fd = openSync(`${file}.tmp`, 'w');
  try {
    writeSync(fd, `${lease}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(`${file}.tmp`, file);
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
