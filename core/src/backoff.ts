import { systemTimers, type TimerHandle, type Timers } from './timers.ts';

export interface BackoffOptions {
  /** Upper bound of the first delay, in ms. */
  initialMs: number;
  /** No delay is ever longer than this. */
  maxMs: number;
  /** Growth of the upper bound per attempt. */
  multiplier: number;
  /** Uniform in [0, 1); injectable so that tests are deterministic. */
  random?: () => number;
  timers?: Timers;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 100, maxMs: 10_000, multiplier: 2 };

/**
 * Exponential backoff with full jitter ("Exponential Backoff And Jitter", AWS Architecture Blog, 2015):
 * attempt n waits a uniform random time in [0, min(maxMs, initialMs * multiplier^n)). Full jitter spreads a
 * fleet of gateways that lost the same backend, instead of having them reconnect in lockstep.
 * Timers are unref'd: a pending retry never keeps the process alive.
 */
export class Backoff {
  private attempt = 0;
  private timer: TimerHandle | undefined;
  private readonly random: () => number;
  private readonly timers: Timers;

  constructor(private readonly options: BackoffOptions = DEFAULT_BACKOFF) {
    if (!(options.initialMs > 0) || !(options.maxMs >= options.initialMs) || !(options.multiplier >= 1)) {
      throw new RangeError(`invalid backoff ${JSON.stringify(options)}: need 0 < initialMs <= maxMs, multiplier >= 1`);
    }
    this.random = options.random ?? Math.random;
    this.timers = options.timers ?? systemTimers;
  }

  /** How many delays were handed out since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** The upper bound of the next delay. */
  get ceilingMs(): number {
    return Math.min(this.options.maxMs, this.options.initialMs * this.options.multiplier ** this.attempt);
  }

  /** The next delay, and one step further up the curve. */
  nextDelayMs(): number {
    const delay = Math.floor(this.random() * this.ceilingMs);
    this.attempt++;
    return delay;
  }

  /** Calls `callback` after the next delay; replaces a retry that is already scheduled. Returns the delay. */
  schedule(callback: () => void): number {
    this.cancel();
    const delay = this.nextDelayMs();
    this.timer = this.timers.setTimeout(() => {
      this.timer = undefined;
      callback();
    }, delay);
    this.timer.unref?.();
    return delay;
  }

  get pending(): boolean {
    return this.timer !== undefined;
  }

  cancel(): void {
    if (this.timer !== undefined) {
      this.timers.clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  /** Back to the first step, after a connection proved healthy. */
  reset(): void {
    this.attempt = 0;
  }
}
