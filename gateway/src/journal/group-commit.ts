/**
 * Group commit: many appends, one transaction. Records wait here until the next commit, which comes when
 * `maxRows` are waiting or `intervalMs` after the previous commit, whichever is first. At high load this
 * turns thousands of messages into one fsync; at low load it bounds the fsync rate to 1000 / intervalMs per
 * second (kind to SD cards) while a lone message waits at most intervalMs.
 *
 * An ack from the backend rides along in the next commit, so freeing rows costs no fsync of its own.
 * Whoever appended hears back only after COMMIT returned: that is what makes a PUBACK mean "on disk".
 */
import { systemClock, systemTimers, type Clock, type TimerHandle, type Timers } from '@fleetgate/common';
import type { CommitResult, Journal, NewRecord } from './journal.ts';

export interface GroupCommitSettings {
  /** Least time between two commits, in ms. */
  intervalMs: number;
  /** Commit at once when this many records are waiting. */
  maxRows: number;
}

export const DEFAULT_GROUP_COMMIT: GroupCommitSettings = { intervalMs: 2, maxRows: 2000 };

/** Told once per append: undefined error means the records are durable, with these seqs. */
export type AppendDone = (err: Error | undefined, seqs?: { firstSeq: number; lastSeq: number }) => void;

export interface GroupCommitOptions extends GroupCommitSettings {
  journal: Journal;
  /** After every successful commit, with the records it appended (seqs result.firstSeq, firstSeq + 1, ...). */
  onCommitted?: (result: CommitResult, records: readonly NewRecord[], durationMs: number) => void;
  /** After a commit failed; the appends it carried were told the error. */
  onFailed?: (err: Error) => void;
  clock?: Clock;
  timers?: Timers;
}

export interface GroupCommitStats {
  commits: number;
  committedRows: number;
  failedCommits: number;
  /** Records waiting for the next commit. */
  waiting: number;
  lastCommitMs: number;
}

export class GroupCommit {
  private records: NewRecord[] = [];
  private appends: Array<{ count: number; done: AppendDone }> = [];
  private ackedThrough = 0;
  private timer: TimerHandle | undefined;
  private lastCommitAt = -Infinity;
  private closed = false;
  private readonly clock: Clock;
  private readonly timers: Timers;
  private readonly counters = { commits: 0, committedRows: 0, failedCommits: 0, lastCommitMs: 0 };

  constructor(private readonly options: GroupCommitOptions) {
    this.clock = options.clock ?? systemClock;
    this.timers = options.timers ?? systemTimers;
  }

  /** Queues `records` for the next commit; `done` hears when they are durable (or why not). */
  append(records: readonly NewRecord[], done: AppendDone): void {
    if (this.closed) return done(new Error('the journal is closed'));
    for (const r of records) this.records.push(r);
    this.appends.push({ count: records.length, done });
    this.schedule();
  }

  /** The backend acked through `throughSeq`: free those rows in the next commit. */
  ack(throughSeq: number): void {
    if (throughSeq <= this.ackedThrough) return;
    this.ackedThrough = throughSeq;
    this.schedule();
  }

  stats(): GroupCommitStats {
    return { ...this.counters, waiting: this.records.length };
  }

  /** Commits what is waiting, now. */
  flush(): void {
    this.cancelTimer();
    const records = this.records;
    const appends = this.appends;
    const ackedThrough = this.ackedThrough > this.options.journal.ackedThrough ? this.ackedThrough : 0;
    if (records.length === 0 && ackedThrough === 0) return;
    this.records = [];
    this.appends = [];
    const started = this.clock.now();
    this.lastCommitAt = started;
    let result: CommitResult;
    try {
      result = this.options.journal.commit(records, ackedThrough);
    } catch (err: unknown) {
      const error = err instanceof Error ? err : new Error(String(err));
      this.counters.failedCommits++;
      for (const a of appends) a.done(error);
      this.options.onFailed?.(error);
      // The ack is still wanted; it goes with the next commit.
      if (ackedThrough > 0) this.schedule();
      return;
    }
    const durationMs = this.clock.now() - started;
    this.counters.commits++;
    this.counters.committedRows += records.length;
    this.counters.lastCommitMs = durationMs;
    let seq = result.firstSeq;
    for (const a of appends) {
      a.done(undefined, { firstSeq: seq, lastSeq: seq + a.count - 1 });
      seq += a.count;
    }
    this.options.onCommitted?.(result, records, durationMs);
  }

  /** Commits what is waiting and refuses further appends. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
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
