/**
 * Data at risk: what the gateway acknowledged to devices and no backend holds yet, and how long the journal can
 * go on taking it. Every row in the journal is such data (a row is freed once every upstream it was routed to
 * acknowledged it), so the bytes and the age come straight from the journal; the rates come from the journal's
 * cumulative counters (payload bytes appended, and freed: acked or dropped) over the last minute.
 *
 *   secondsUntilFull = (limit - payloadBytes) / (inBytesPerSecond - outBytesPerSecond)
 *
 * only while the journal grows and has a limit (0 once at or over it); otherwise null, since a journal that
 * drains or holds steady never fills at the current rates.
 */
import type { JournalLimits } from '../journal/journal.ts';
import type { DataAtRisk } from '../stats.ts';

export interface DataAtRiskSample {
  nowMs: number;
  /** The journal's rows and their payload bytes. */
  rows: number;
  payloadBytes: number;
  /** gatewayTimeMs of the oldest row, or null when the journal is empty. */
  oldestTimeMs: number | null;
  /** Payload bytes appended since start, and freed since start (acked or dropped). */
  appendedBytes: number;
  freedBytes: number;
}

/** Over this long the rates are measured. */
export const DATA_AT_RISK_WINDOW_MS = 60_000;

/**
 * Samples closer together than this are not kept (they still count as the newest): stats may be asked for many
 * times a second, and ~60 kept samples are plenty for a one-minute window.
 */
const MIN_SPACING_MS = 1000;

type Kept = Pick<DataAtRiskSample, 'nowMs' | 'appendedBytes' | 'freedBytes'>;

export class DataAtRiskTracker {
  /** Oldest first; the first is the newest sample at or before the start of the window, once there is one. */
  private samples: Kept[] = [];

  constructor(
    private readonly limits: JournalLimits,
    private readonly windowMs = DATA_AT_RISK_WINDOW_MS,
  ) {}

  /** Takes a sample (called every few seconds and on each stats request) and answers what is at risk now. */
  observe(sample: DataAtRiskSample): DataAtRisk {
    this.keep(sample);
    const first = this.samples[0] ?? sample;
    const seconds = (sample.nowMs - first.nowMs) / 1000;
    const inBytesPerSecond = seconds > 0 ? (sample.appendedBytes - first.appendedBytes) / seconds : 0;
    const outBytesPerSecond = seconds > 0 ? (sample.freedBytes - first.freedBytes) / seconds : 0;
    const limitBytes = this.limits.maxBytes > 0 ? this.limits.maxBytes : null;
    return {
      unackedBytes: sample.payloadBytes,
      unackedRows: sample.rows,
      oldestUnackedAgeMs: sample.oldestTimeMs === null ? null : Math.max(0, sample.nowMs - sample.oldestTimeMs),
      inBytesPerSecond,
      outBytesPerSecond,
      limitBytes,
      secondsUntilFull: secondsUntilFull(limitBytes, sample.payloadBytes, inBytesPerSecond - outBytesPerSecond),
      whenFull: this.limits.policy,
    };
  }

  private keep({ nowMs, appendedBytes, freedBytes }: DataAtRiskSample): void {
    const last = this.samples.at(-1);
    // Counters that went back (or a clock that did) belong to another run: start over.
    if (last && (appendedBytes < last.appendedBytes || freedBytes < last.freedBytes || nowMs < last.nowMs)) this.samples = [];
    const newest = this.samples.at(-1);
    if (!newest || nowMs - newest.nowMs >= MIN_SPACING_MS) this.samples.push({ nowMs, appendedBytes, freedBytes });
    const windowStart = nowMs - this.windowMs;
    let drop = 0;
    while (drop + 1 < this.samples.length && this.samples[drop + 1]!.nowMs <= windowStart) drop++;
    if (drop > 0) this.samples.splice(0, drop);
  }
}

function secondsUntilFull(limitBytes: number | null, payloadBytes: number, netBytesPerSecond: number): number | null {
  if (limitBytes === null) return null;
  if (payloadBytes >= limitBytes) return 0;
  return netBytesPerSecond > 0 ? (limitBytes - payloadBytes) / netBytesPerSecond : null;
}
