/**
 * The heartbeat watchdog of a session whose backend answers heartbeats (Welcome.answers_heartbeats; gRFC A8
 * and uplink.proto "Liveness" say why not HTTP/2 pings): half of deadAfterMs without hearing anything sends a
 * Heartbeat (once per quiet spell), all of it ends the session. One timer, re-armed from the time last heard, so
 * frames arriving cost no timer work, only a clock read.
 */
import type { Clock, TimerHandle, Timers } from '@fleetgate/core';
import type { Heartbeat } from '@fleetgate/protos';
import { BackendSilentError } from '../errors.ts';

export interface HeartbeatWatch {
  /** Is the session watched still the current one? */
  alive(): boolean;
  /** Nothing came for deadAfterMs / 2: ask. */
  ask(heartbeat: Heartbeat): void;
  /** Nothing came for deadAfterMs: the session is dead. */
  dead(err: BackendSilentError): void;
}

export class Heartbeats {
  /** When the session last heard from the backend (clock ms). */
  private heardAt = 0;
  /** The quiet spell (by its heardAt) a Heartbeat was already sent for. */
  private askedAt = -1;
  private timer: TimerHandle | undefined;
  private lastId = 0;

  constructor(
    private readonly timers: Timers,
    private readonly clock: Clock,
  ) {}

  /** A frame came from the backend. */
  heard(): void {
    this.heardAt = this.clock.now();
  }

  /** A session began (Welcome): no Heartbeat asked in it yet. */
  begin(): void {
    this.askedAt = -1;
  }

  /** Watches the session until stop(). */
  watch(deadAfterMs: number, on: HeartbeatWatch): void {
    if (!on.alive()) return;
    const askAfter = Math.floor(deadAfterMs / 2);
    const quiet = this.clock.now() - this.heardAt;
    if (quiet >= deadAfterMs) return on.dead(new BackendSilentError(quiet, deadAfterMs));
    if (quiet >= askAfter && this.askedAt !== this.heardAt) {
      this.askedAt = this.heardAt;
      on.ask({ id: ++this.lastId, timeMs: this.clock.now() });
    }
    const wait = (quiet >= askAfter ? deadAfterMs : askAfter) - quiet;
    this.timer = this.timers.setTimeout(() => this.watch(deadAfterMs, on), Math.max(1, wait));
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
  }
}
