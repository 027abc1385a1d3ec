/**
 * The sender: what goes next on a ready session, within the credit and the window, in lanes.
 *
 * When a session becomes ready, what the journal holds up to then is the backlog (after an outage, maybe
 * millions of rows); what is committed afterwards is live. Live batches go first, so fresh data does not wait
 * behind a replay; the backlog drains with the credit left, always keeping LIVE_RESERVE credits for live data,
 * and at most `backlogWindow` batches in flight, so that live data never queues behind much of it at the
 * backend. Records the backend rejected go again (the retry lane) before more backlog. Gaps go ahead of
 * everything, once per session, needing no credit. Each lane is sent in seq order; write() returning false
 * stops the sender until 'drain'.
 */
import type { JournalRecord, UpstreamJournal } from '../journal/journal.ts';
import type { InflightLedger, Lane } from './inflight-ledger.ts';
import type { UplinkCall } from './session.ts';
import type { UplinkSettings } from './uplink-settings.ts';
import type { UplinkCounters, UplinkStats } from './uplink-stats.ts';

/** Credits the backlog leaves for live data. */
const LIVE_RESERVE = 2;

export interface LaneDeps {
  journal: UpstreamJournal;
  ledger: InflightLedger;
  counters: UplinkCounters;
  /** `call` drained after write() returned false: send more if it is still the session's stream. */
  drained(call: UplinkCall): void;
}

export class Lanes {
  private credit = 0;
  private liveFrom = 0;
  private liveSent = 0;
  private backlogSent = 0;
  private waitingForDrain = false;
  private gapsDirty = true;
  /** Gaps sent on this session: from -> to. */
  private gapsSent = new Map<number, number>();
  private retries: number[] = [];
  /** Highest seq ever written on any session: what is sent again at or below it is a resend. */
  private everSent: number;

  constructor(private readonly deps: LaneDeps) {
    this.everSent = deps.journal.ackedThrough;
  }

  /** A session became ready with `credit`: everything in the journal now is backlog, what comes after is live. */
  begin(credit: number): void {
    const journal = this.deps.journal;
    this.credit = credit;
    this.liveFrom = this.liveSent = journal.lastSeq;
    this.backlogSent = journal.ackedThrough;
    this.gapsSent = new Map();
    this.gapsDirty = true;
    this.retries = [];
    this.waitingForDrain = false;
  }

  /** The session ended: nothing more goes until the next one begins. */
  end(): void {
    this.credit = 0;
    this.waitingForDrain = false;
  }

  grant(batches: number): void {
    this.credit += batches;
  }

  /** New gaps were recorded: send them ahead of anything else. */
  gapsChanged(): void {
    this.gapsDirty = true;
  }

  /** Send this rejected record again. */
  retry(seq: number): void {
    this.retries.push(seq);
  }

  /** The highest seq this session sent without a hole. */
  get contiguousThrough(): number {
    return this.backlogSent < this.liveFrom ? this.backlogSent : this.liveSent;
  }

  isGapSent(from: number, to: number): boolean {
    return this.gapsSent.get(from) === to;
  }

  stats(): Pick<UplinkStats, 'sentThrough' | 'lanes' | 'credit'> {
    return {
      sentThrough: Math.max(this.liveSent, this.backlogSent),
      lanes: {
        liveFrom: this.liveFrom,
        liveSentThrough: this.liveSent,
        backlogSentThrough: this.backlogSent,
        backlogRemaining: this.backlogSent < this.liveFrom,
      },
      credit: this.credit,
    };
  }

  /** Sends what the credit, the window and the stream allow: gaps, then live, then retries, then backlog. */
  pump(call: UplinkCall, { window, maxBatchRecords, maxBatchBytes, backlogWindow }: UplinkSettings): void {
    const { journal, ledger } = this.deps;
    if (this.gapsDirty) this.sendGaps(call);
    while (!this.waitingForDrain && this.credit > 0 && ledger.size < window) {
      const live = journal.readAfter(this.liveSent, maxBatchRecords, maxBatchBytes);
      if (live.length > 0) {
        this.send(call, 'live', live);
        this.liveSent = live[live.length - 1]!.seq;
        continue;
      }
      if (this.credit <= LIVE_RESERVE && ledger.size > 0) return;
      const retry = this.retries.shift();
      if (retry !== undefined) {
        const record = journal.readAfter(retry - 1, 1, maxBatchBytes, retry);
        if (record.length > 0) this.send(call, 'retry', record);
        continue;
      }
      if (this.backlogSent < this.liveFrom) {
        if (ledger.on('backlog') >= backlogWindow) return;
        const backlog = journal.readAfter(this.backlogSent, maxBatchRecords, maxBatchBytes, this.liveFrom);
        this.backlogSent = backlog.length > 0 ? backlog[backlog.length - 1]!.seq : this.liveFrom;
        if (backlog.length > 0) this.send(call, 'backlog', backlog);
        continue;
      }
      return;
    }
  }

  private send(call: UplinkCall, lane: Lane, records: JournalRecord[]): void {
    const { ledger, counters } = this.deps;
    const from = records[0]!.seq;
    const to = records[records.length - 1]!.seq;
    if (from <= this.everSent) counters.recordsResent += records.filter((r) => r.seq <= this.everSent).length;
    const writable = call.write({ frame: { $case: 'batch', value: { records } } });
    ledger.add({ from, to, lane, records });
    this.credit--;
    this.everSent = Math.max(this.everSent, to);
    counters.batchesSent++;
    counters.recordsSent += records.length;
    if (!writable) {
      this.waitingForDrain = true;
      counters.drainWaits++;
      call.once('drain', () => this.deps.drained(call));
    }
  }

  /** The stream of the current session drained. */
  resume(): void {
    this.waitingForDrain = false;
  }

  /** Gaps not yet sent on this session: small, sent ahead of any batch, needing no credit. */
  private sendGaps(call: UplinkCall): void {
    this.gapsDirty = false;
    for (const gap of this.deps.journal.gaps()) {
      if (this.gapsSent.has(gap.from)) continue;
      this.gapsSent.set(gap.from, gap.to);
      this.deps.counters.gapsSent++;
      call.write({
        frame: {
          $case: 'gap',
          value: { fromSeq: gap.from, toSeq: gap.to, reason: gap.reason, count: gap.count, timeMs: gap.timeMs },
        },
      });
    }
  }
}
