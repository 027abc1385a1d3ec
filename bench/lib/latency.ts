/** The benchmarks' latency histograms are the simulator's (one HDR setup for every figure fleetgate reports). */
export { latencyHistogram, percentilesMs, recordMs, type Percentiles } from '@fleetgate/simulators';

/** Milliseconds since the epoch with sub-ms resolution, comparable across the processes of one machine. */
export function epochNow(): number {
  return performance.timeOrigin + performance.now();
}
