/**
 * What the gateway keeps per MQTT connection once authenticated: who it is, its token (to end the connection
 * when the token expires or is revoked), the QoS 1 flow bound (puback-writer.ts), and its rate bucket.
 */
import type { Clock, TimerHandle, Timers } from '@fleetgate/core';
import type { TokenClaims } from '@fleetgate/common';
import type { DeviceChannel } from '../commands/device-registry.ts';
import { ConnectionFlow } from './puback-writer.ts';

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

const MAX_TIMER_MS = 2 ** 31 - 1;

export class DeviceConnection {
  readonly flow: ConnectionFlow;
  readonly rate: RateQueue | undefined;
  /** How commands reach this connection, once it is announced. */
  channel: DeviceChannel | undefined;
  private expiry: TimerHandle | undefined;
  private readonly clock: Clock;
  private readonly timers: Timers;

  constructor(
    readonly deviceId: string,
    readonly claims: TokenClaims | undefined,
    options: { maxUnacked: number; onHold: () => void; rateLimit?: RateLimit; clock: Clock; timers: Timers },
  ) {
    this.clock = options.clock;
    this.timers = options.timers;
    this.flow = new ConnectionFlow(options.maxUnacked, options.onHold);
    this.rate = options.rateLimit ? new RateQueue(options.rateLimit, options.clock, options.timers) : undefined;
  }

  /** Calls `onExpired` when the token expires (a timer waits at most ~24.8 days, so a longer wait re-arms). */
  expireAt(expiresAtMs: number, onExpired: () => void): void {
    const wait = Math.max(0, expiresAtMs - this.clock.now());
    this.expiry = this.timers.setTimeout(
      () => (wait > MAX_TIMER_MS ? this.expireAt(expiresAtMs, onExpired) : onExpired()),
      Math.min(wait, MAX_TIMER_MS),
    );
    this.expiry.unref?.();
  }

  close(): void {
    if (this.expiry !== undefined) this.timers.clearTimeout(this.expiry);
    this.expiry = undefined;
    this.rate?.close();
  }
}
