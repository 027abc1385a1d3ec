/**
 * The life of an uplink between sessions: its state (ConnectivityState, as grpc-js names its channel's), and
 * when and where the next session goes after one failed. The next attempt waits a backoff delay (exponential
 * from 100 ms to reconnectMaxMs, full jitter: core/src/backoff.ts) and goes to the next replica when there are
 * several. An auth refusal (is-retryable.ts) waits refusedRetryMs instead, or until the token changes, and is
 * shown as such (UplinkStats.refused).
 */
import {
  Backoff,
  type Clock,
  ConnectivityState,
  type ConnectivityTracker,
  errorMessage,
  LogSampler,
  type Timers,
} from '@fleetgate/core';
import type { Logger } from '@fleetgate/common';
import { authRefusal, type AuthRefusal } from './is-retryable.ts';
import { NoTokenError } from '../errors.ts';
import type { UplinkRefusal } from './uplink-stats.ts';

/** The same session failure is logged as a warning at most this often. */
const FAILURE_LOG_EVERY_MS = 60_000;

export interface LifecycleOptions {
  connectivity: ConnectivityTracker;
  /** The replicas' addresses, tried in turn. */
  targets: readonly string[];
  reconnectMaxMs: number;
  refusedRetryMs: number;
  logger: Logger;
  timers: Timers;
  clock: Clock;
  backoff?: Backoff;
  getToken?: () => string;
  /** The journal's low-water mark, for the logs. */
  ackedThrough: () => number;
}

export class Lifecycle {
  private readonly backoff: Backoff;
  private current = 0;
  /** The token the last session went with. */
  private sessionToken: string | undefined;
  private refusal: UplinkRefusal | null = null;

  constructor(private readonly options: LifecycleOptions) {
    const { connectivity, reconnectMaxMs, logger, timers } = options;
    this.backoff =
      options.backoff ?? new Backoff({ initialMs: Math.min(100, reconnectMaxMs), maxMs: reconnectMaxMs, multiplier: 2, timers });
    // While a backend is down every attempt fails the same way: one warning a minute for the same reason (with how
    // many were left out), the attempts themselves at debug, so that a day-long outage is not a flood in journald.
    const failures = new LogSampler(FAILURE_LOG_EVERY_MS);
    connectivity.on('state', ({ state, previous, reason }) => {
      if (state === ConnectivityState.CONNECTING) return logger.debug({ state, previous }, 'uplink connecting');
      const fields = { state, previous, reason, ackedThrough: options.ackedThrough() };
      if (state !== ConnectivityState.TRANSIENT_FAILURE) return logger.info(fields, `uplink ${state}`);
      const suppressed = failures.take((reason ?? '').replace(/\d+/g, '#')); // grpc-js puts times in its messages
      if (suppressed === undefined) logger.debug(fields, `uplink ${state}`);
      else logger.warn({ ...fields, ...(suppressed > 0 ? { suppressed } : {}) }, `uplink ${state}`);
    });
  }

  get state(): ConnectivityState {
    return this.options.connectivity.state;
  }

  /** Which replica the current (or next) session goes to. */
  get target(): number {
    return this.current;
  }

  get refused(): UplinkRefusal | null {
    return this.refusal;
  }

  /** A session is about to start: its token (undefined without one). Throws NoTokenError when there is none to read. */
  connecting(): string | undefined {
    this.options.connectivity.set(ConnectivityState.CONNECTING);
    try {
      this.sessionToken = this.options.getToken?.();
    } catch (err: unknown) {
      throw new NoTokenError(err);
    }
    return this.sessionToken;
  }

  /** The session became ready (Welcome): the backoff starts over, a refusal is over. */
  ready(): void {
    this.backoff.reset();
    this.refusal = null;
    this.options.connectivity.set(ConnectivityState.READY);
  }

  /**
   * A session (or the attempt to start one: `rotate` false) failed with `err`: schedules `reconnect` and
   * returns what to show as the last error. Not after shutdown.
   */
  failed(err: unknown, reconnect: () => void, rotate = true): string {
    let reason = errorMessage(err);
    // With several upstreams (replicas of one backend), the next attempt goes to the next one: any replica can
    // take this gateway's stream, and it resumes from the last ack as after any reconnect.
    const { targets } = this.options;
    if (rotate && targets.length > 1) {
      this.current = (this.current + 1) % targets.length;
      reason += `; next: ${targets[this.current]!}`;
    }
    const refusal = authRefusal(err);
    // A refusal of a token that has since been replaced (the file rewritten) says nothing about the new one.
    if (refusal !== undefined && !this.tokenChanged()) this.refuse(refusal, reason);
    else this.refusal = null;
    this.options.connectivity.set(ConnectivityState.TRANSIENT_FAILURE, reason);
    this.backoff.schedule(() => this.next(reconnect));
    return reason;
  }

  /** No more sessions. */
  shutdown(): void {
    this.options.connectivity.set(ConnectivityState.SHUTDOWN);
    this.backoff.cancel();
  }

  /** A backoff delay is over: reconnect, unless refused and neither the wait nor the token is over (then wait on). */
  private next(reconnect: () => void): void {
    if (this.state === ConnectivityState.SHUTDOWN) return;
    if (this.refusal && this.options.clock.now() < this.refusal.retryAtMs && !this.tokenChanged()) {
      this.backoff.schedule(() => this.next(reconnect));
      return;
    }
    reconnect();
  }

  private refuse(status: AuthRefusal, reason: string): void {
    const now = this.options.clock.now();
    const waitMs = Math.max(this.options.refusedRetryMs, this.options.reconnectMaxMs);
    this.refusal = { status, sinceMs: this.refusal?.sinceMs ?? now, retryAtMs: now + waitMs };
    this.options.logger.error(
      { status, reason, retryInMs: waitMs, since: new Date(this.refusal.sinceMs).toISOString() },
      `the backend refuses this gateway's credentials (${status}): next attempt in ${Math.round(waitMs / 1000)} s, or as soon as the token changes`,
    );
  }

  /** Does the token differ from the one the last session went with? (One that cannot be read: yes, let connect say so.) */
  private tokenChanged(): boolean {
    if (!this.options.getToken) return false;
    try {
      return this.options.getToken() !== this.sessionToken;
    } catch {
      return true;
    }
  }
}
