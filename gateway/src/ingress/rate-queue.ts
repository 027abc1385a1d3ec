/**
 * A device's rate limit (--rate-limit N --rate-burst M), the same for MQTT connections (device-connection.ts) and
 * device-link streams (device-link/device-session.ts): a token bucket, with injected clock and timers.
 */
import type { Clock, TimerHandle, Timers } from '@fleetgate/core';

export interface RateLimit {
  /** Messages per second, sustained. */
  perSecond: number;
  /** Messages allowed at once beyond the sustained rate. */
  burst: number;
}

/**
 * A token bucket that queues: work beyond the rate waits its turn (in order) rather than being refused,
 * because MQTT 3.1.1 cannot refuse a PUBLISH without closing the connection. Waiting work holds aedes'
 * callback, so the device is slowed down by TCP backpressure, and loses nothing.
 */
export class RateQueue {
  private tokens: number;
  private last: number;
  private readonly waiting: Array<() => void> = [];
  private timer: TimerHandle | undefined;

  constructor(
    private readonly limit: RateLimit,
    private readonly clock: Clock,
    private readonly timers: Timers,
  ) {
    this.tokens = limit.burst;
    this.last = clock.now();
  }

  /** Runs `work` now if the rate allows and nothing waits before it; else queues it. Returns true if it waits. */
  submit(work: () => void): boolean {
    if (this.waiting.length === 0 && this.take()) {
      work();
      return false;
    }
    this.waiting.push(work);
    this.schedule();
    return true;
  }

  close(): void {
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
    this.waiting.length = 0;
  }

  private take(): boolean {
    const now = this.clock.now();
    this.tokens = Math.min(this.limit.burst, this.tokens + ((now - this.last) / 1000) * this.limit.perSecond);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private schedule(): void {
    if (this.timer !== undefined) return;
    const wait = Math.max(1, Math.ceil(((1 - this.tokens) / this.limit.perSecond) * 1000));
    this.timer = this.timers.setTimeout(() => {
      this.timer = undefined;
      while (this.waiting.length > 0 && this.take()) this.waiting.shift()!();
      if (this.waiting.length > 0) this.schedule();
    }, wait);
  }
}
