import * as hdr from 'hdr-histogram-js';

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** An HDR histogram of latencies in microseconds, from 1 µs to 1 hour, 3 significant digits. */
export function latencyHistogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
}

/** Records a latency given in milliseconds (clamped to the histogram's range). */
export function recordMs(histogram: hdr.Histogram, ms: number): void {
  histogram.recordValue(Math.min(3_600_000_000, Math.max(1, Math.round(ms * 1000))));
}

/** The percentiles of a histogram made by latencyHistogram(), in milliseconds. */
export function percentilesMs(histogram: hdr.Histogram): Percentiles {
  const ms = (us: number) => +(us / 1000).toFixed(3);
  const at = (p: number) => ms(histogram.getValueAtPercentile(p));
  return { p50: at(50), p90: at(90), p99: at(99), p999: at(99.9), max: ms(histogram.maxValue) };
}
