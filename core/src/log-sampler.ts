import { systemClock, type Clock } from './timers.ts';

/**
 * Keeps a flood from becoming a flood of log lines: at most one line per key per interval. `take(key)` returns
 * how many were suppressed since the last line (0 or more) when this one should be logged, else undefined.
 */
export class LogSampler {
  private readonly keys = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly intervalMs = 1000,
    private readonly clock: Clock = systemClock,
  ) {}

  take(key: string): number | undefined {
    const now = this.clock.now();
    const entry = this.keys.get(key);
    if (entry && now - entry.at < this.intervalMs) {
      entry.suppressed++;
      return undefined;
    }
    const suppressed = entry?.suppressed ?? 0;
    this.keys.set(key, { at: now, suppressed: 0 });
    return suppressed;
  }
}
