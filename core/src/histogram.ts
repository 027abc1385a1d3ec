/**
 * A histogram of durations counted where they happen (a thread, a session) and read as snapshots: counts per
 * bucket, Prometheus' shape (https://prometheus.io/docs/concepts/metric_types/#histogram) without a client
 * library, so that the journal thread and the uplink count without prom-client and the main thread exports them
 * as they are (admin/metrics.ts, ExportedHistogram). Observing costs a short scan of the bounds and no allocation.
 */

/** Upper bounds (ms) of the duration buckets; the last bucket, above them all, is +Inf. */
export const DURATION_BUCKETS_MS: readonly number[] = [0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000];

/** Counts per bucket of boundsMs (each counted in the first bucket whose bound it does not exceed), then +Inf. */
export interface HistogramSnapshot {
  boundsMs: readonly number[];
  counts: number[];
  sumMs: number;
  count: number;
}

export class DurationHistogram {
  private readonly counts: number[];
  private sumMs = 0;
  private count = 0;

  constructor(private readonly boundsMs: readonly number[] = DURATION_BUCKETS_MS) {
    this.counts = boundsMs.map(() => 0).concat(0);
  }

  /** `n` observations of `ms` each (a batch whose records all took as long). */
  observe(ms: number, n = 1): void {
    const bounds = this.boundsMs;
    let bucket = 0;
    while (bucket < bounds.length && ms > bounds[bucket]!) bucket++;
    this.counts[bucket]! += n;
    this.sumMs += ms * n;
    this.count += n;
  }

  snapshot(): HistogramSnapshot {
    return { boundsMs: this.boundsMs, counts: [...this.counts], sumMs: this.sumMs, count: this.count };
  }
}

/**
 * The q-quantile (0..1) of a snapshot, interpolated linearly inside its bucket as Prometheus' histogram_quantile
 * does; the +Inf bucket answers its lower bound. null when nothing was observed.
 */
export function quantileMs(snapshot: HistogramSnapshot, q: number): number | null {
  if (snapshot.count === 0) return null;
  const rank = q * snapshot.count;
  let below = 0;
  for (let i = 0; i < snapshot.counts.length; i++) {
    const n = snapshot.counts[i]!;
    if (below + n >= rank && n > 0) {
      const lower = i === 0 ? 0 : snapshot.boundsMs[i - 1]!;
      if (i >= snapshot.boundsMs.length) return lower;
      return lower + ((snapshot.boundsMs[i]! - lower) * (rank - below)) / n;
    }
    below += n;
  }
  return snapshot.boundsMs[snapshot.boundsMs.length - 1]!;
}
