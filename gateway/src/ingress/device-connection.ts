/**
 * What the gateway keeps per MQTT connection once authenticated: who it is, its token (to end the connection
 * when the token expires or is revoked), the QoS 1 flow bound (puback-writer.ts), and its rate bucket.
 */
import type { Clock, TimerHandle, Timers } from '@fleetgate/core';
import type { TokenClaims } from '@fleetgate/common';
import type { DeviceChannel } from '../commands/device-registry.ts';
import { ConnectionFlow } from './puback-writer.ts';
import { RateQueue, type RateLimit } from './rate-queue.ts';

const MAX_TIMER_MS = 2 ** 31 - 1;

export class DeviceConnection {
  readonly flow: ConnectionFlow;
  readonly rate: RateQueue | undefined;
  /** How commands reach this connection, once it is announced. */
  channel: DeviceChannel | undefined;
  /** Counted as connected by transport and MQTT version (from aedes' clientReady to clientDisconnect). */
  counted = false;
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
