/**
 * Group commit: many appends, one transaction. Records wait here until the next commit, which comes when
 * `maxRows` are waiting or `intervalMs` after the previous commit, whichever is first. At high load this
 * turns thousands of messages into one fsync; at low load it bounds the fsync rate to 1000 / intervalMs per
 * second (kind to SD cards) while a lone message waits at most intervalMs.
 *
 * What the backend acknowledged (ranges of seqs) rides along in the next commit, so freeing rows costs no fsync
 * of its own. Whoever appended hears back only after COMMIT returned: that is what makes a PUBACK mean "on disk".
 *
 * Admission: with the reject-new policy, appends that do not fit the journal's room are refused
 * (JournalFullError, reason "limit"), in order: an append is taken whole or not at all. A disk that is full
 * (SQLITE_FULL, or a journal opened short of room) refuses every append (reason "disk") until a write succeeds
 * again: after a commit that freed rows, or a probe once a second. Commits that only free rows go on meanwhile
 * (the journal's reserve gives them room: journal/sqlite/reserve.ts).
 */
import {
  type Clock,
  DurationHistogram,
  type HistogramSnapshot,
  systemClock,
  systemTimers,
  type TimerHandle,
  type Timers,
} from '@fleetgate/core';
import { EVERY_UPSTREAM, type CommitResult, type Journal, type NewRecord, type Release } from './journal.ts';
import { JournalFullError } from '../errors.ts';

export interface GroupCommitSettings {
  /** Least time between two commits, in ms. */
  intervalMs: number;
  /** Commit at once when this many records are waiting. */
  maxRows: number;
}

export const DEFAULT_GROUP_COMMIT: GroupCommitSettings = { intervalMs: 2, maxRows: 2000 };

/** Told once per append: undefined error means the records are durable. */
export type AppendDone = (err: Error | undefined) => void;

interface Append {
  records: readonly NewRecord[];
  /** Their routes (Journal.commit), aligned with them; undefined: every upstream. */
  routes: readonly number[] | undefined;
  bytes: number;
  done: AppendDone;
}

export interface GroupCommitOptions extends GroupCommitSettings {
  /** `full` at the start (a journal opened short of room): appends are refused until a probe succeeds. */
  journal: Pick<Journal, 'commit' | 'room' | 'probe'> & { readonly full?: boolean };
  /** reject-new: appends that do not fit journal.room are refused. */
  rejectWhenFull: boolean;
  /** After every successful commit, with the records it appended (seqs result.firstSeq, firstSeq + 1, ...). */
  onCommitted?: (result: CommitResult, durationMs: number) => void;
  /** After a commit failed; the appends it carried were told the error. */
  onFailed?: (err: Error) => void;
  /** The disk became full, or took writes again. */
  onDiskFull?: (full: boolean) => void;
  clock?: Clock;
  timers?: Timers;
}

/** Upper bounds (ms) of the commit duration buckets; the last bucket, above them all, is +Inf. */
export const COMMIT_BUCKETS_MS = [0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500];

/** How long commits took (their transaction, fsync included): counts per bucket of COMMIT_BUCKETS_MS, then +Inf. */
export type CommitDurations = HistogramSnapshot;

export interface GroupCommitStats {
  commits: number;
  committedRows: number;
  failedCommits: number;
  /** Appends refused because the journal or the disk was full. */
  rejectedAppends: number;
  diskFull: boolean;
  /** Records waiting for the next commit. */
  waiting: number;
  lastCommitMs: number;
  commitDurations: CommitDurations;
}

export class GroupCommit {
  private records: NewRecord[] = [];
  private appends: Append[] = [];
  private releases: Release[] = [];
  private timer: TimerHandle | undefined;
  private probeTimer: TimerHandle | undefined;
  private lastCommitAt = -Infinity;
  private closed = false;
  private diskFull = false;
  private readonly clock: Clock;
  private readonly timers: Timers;
  private readonly counters = { commits: 0, committedRows: 0, failedCommits: 0, rejectedAppends: 0, lastCommitMs: 0 };
  private readonly durations = new DurationHistogram(COMMIT_BUCKETS_MS);

  constructor(private readonly options: GroupCommitOptions) {
    this.clock = options.clock ?? systemClock;
    this.timers = options.timers ?? systemTimers;
    if (options.journal.full) this.setDiskFull(true);
  }

  /**
   * Queues `records` for the next commit; `done` hears when they are durable (or why not). `routes`: the
   * upstreams of each (Journal.commit), decided by the caller; without them, every upstream.
   */
  append(records: readonly NewRecord[], done: AppendDone, routes?: readonly number[]): void {
    if (this.closed) return done(new Error('the journal is closed'));
    let bytes = 0;
    for (const r of records) bytes += r.payload.length;
    this.appends.push({ records, routes, bytes, done });
    for (const r of records) this.records.push(r);
    this.schedule();
  }

  /** An upstream committed `range`: free those rows for it in the next commit (after close, in the next flush()). */
  release(range: Release): void {
    this.releases.push(range);
    if (!this.closed) this.schedule();
  }

  stats(): GroupCommitStats {
    return {
      ...this.counters,
      diskFull: this.diskFull,
      waiting: this.records.length,
      commitDurations: this.durations.snapshot(),
    };
  }

  /** Commits what is waiting, now. */
  flush(): void {
    this.cancelTimer();
    if (this.records.length === 0 && this.releases.length === 0) return;
    // Near the limit (reject-new), what the backend freed must count before appends are judged: commit it first.
    if (this.releases.length > 0 && this.options.rejectWhenFull && !this.diskFull && this.admit().refused.length > 0)
      this.commit([], []);
    const { taken, refused } = this.admit();
    this.records = [];
    this.appends = [];
    for (const a of refused) a.done(new JournalFullError(this.diskFull ? 'disk' : 'limit'));
    this.counters.rejectedAppends += refused.length;
    this.commit(
      taken.flatMap((a) => a.records),
      taken,
    );
  }

  /** One journal commit of `records` (the appends `taken`) and every release waiting. */
  private commit(records: readonly NewRecord[], taken: readonly Append[]): void {
    const releases = this.releases;
    this.releases = [];
    if (records.length === 0 && releases.length === 0) return;
    const started = this.clock.now();
    this.lastCommitAt = started;
    const startedPrecisely = performance.now();
    let result: CommitResult;
    try {
      result = this.options.journal.commit(records, releases, routesOf(taken));
      this.durations.observe(performance.now() - startedPrecisely);
    } catch (err: unknown) {
      const error = isDiskFull(err) ? new JournalFullError('disk') : err instanceof Error ? err : new Error(String(err));
      this.counters.failedCommits++;
      if (isDiskFull(err)) this.setDiskFull(true);
      for (const a of taken) a.done(error);
      this.options.onFailed?.(error);
      // What the backend acknowledged is still to be freed: with the next commit.
      this.releases.unshift(...releases);
      if (releases.length > 0 && !this.closed) this.schedule();
      return;
    }
    // Freed rows may be the space that was missing; a commit that only freed rows proves nothing by itself.
    if (this.diskFull && result.released > 0) this.probe();
    const durationMs = this.clock.now() - started;
    this.counters.commits++;
    this.counters.committedRows += result.stored.length;
    this.counters.lastCommitMs = durationMs;
    for (const a of taken) a.done(undefined);
    this.options.onCommitted?.(result, durationMs);
  }

  /** Commits what is waiting and refuses further appends. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    if (this.probeTimer !== undefined) this.timers.clearTimeout(this.probeTimer);
  }

  /** Which appends this commit takes: all, unless the disk is full or (reject-new) they exceed the room. */
  private admit(): { taken: Append[]; refused: Append[] } {
    if (this.diskFull) return { taken: [], refused: this.appends };
    if (!this.options.rejectWhenFull) return { taken: this.appends, refused: [] };
    let room = this.options.journal.room;
    const taken = [];
    const refused = [];
    for (const a of this.appends) {
      if (refused.length === 0 && a.bytes <= room) {
        taken.push(a);
        room -= a.bytes;
      } else {
        refused.push(a); // in order: nothing after a refused append is taken
      }
    }
    return { taken, refused };
  }

  private setDiskFull(full: boolean): void {
    if (this.diskFull === full) return;
    this.diskFull = full;
    this.options.onDiskFull?.(full);
    if (full) this.scheduleProbe();
    else if (this.probeTimer !== undefined) {
      this.timers.clearTimeout(this.probeTimer);
      this.probeTimer = undefined;
    }
  }

  /** Once a second while the disk is full: does it take a write again? */
  private scheduleProbe(): void {
    this.probeTimer = this.timers.setTimeout(() => {
      this.probeTimer = undefined;
      if (this.diskFull && !this.closed && !this.probe()) this.scheduleProbe();
    }, 1000);
    this.probeTimer.unref?.();
  }

  /** Does the journal take writes again? If so, appends resume. */
  private probe(): boolean {
    try {
      this.options.journal.probe();
    } catch {
      return false;
    }
    this.setDiskFull(false);
    return true;
  }

  private schedule(): void {
    if (this.records.length >= this.options.maxRows) return this.flush();
    if (this.timer !== undefined) return;
    const wait = Math.max(0, this.lastCommitAt + this.options.intervalMs - this.clock.now());
    this.timer = this.timers.setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, wait);
  }

  private cancelTimer(): void {
    if (this.timer !== undefined) {
      this.timers.clearTimeout(this.timer);
      this.timer = undefined;
    }
  }
}

/** The routes of the appends taken, aligned with their records; undefined when none has any. */
function routesOf(taken: readonly Append[]): number[] | undefined {
  if (!taken.some((a) => a.routes)) return undefined;
  return taken.flatMap((a) => a.routes ?? a.records.map(() => EVERY_UPSTREAM));
}

function isDiskFull(err: unknown): boolean {
  return (err as { code?: string } | null)?.code === 'SQLITE_FULL';
}
