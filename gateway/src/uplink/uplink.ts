/**
 * The uplink: streams the journal to one backend over a long-lived bidirectional gRPC stream.
 *
 *   connect -> Hello{lastAckedSeq} -> Welcome{limits: first credit} -> READY                      (session.ts)
 *   -> batches: the live lane first, the backlog lane with the credit left                         (lanes.ts)
 *   -> Ack{from, through} per batch, settled against the batches in flight                 (inflight-ledger.ts)
 *   -> the acked range is freed in the journal (onReleased); Credit{n} from the backend lets n more batches go
 *
 * Each lane is sent in seq order and each batch is acked by its range, so rows are freed exactly as the backend
 * has them; the backend orders each device's records by seq whatever the lane. The backend grants credit as it
 * commits, so a replay never floods it.
 *
 * Other rules:
 * - At most `window` batches are unacked at once, whatever the credit: a backend that stops acking makes the
 *   journal grow, not the gateway's memory. grpc-js backpressure is honoured (write() false -> wait 'drain').
 * - Gaps (records the journal had to let go of) are sent before anything else, once per session, until acked.
 * - A record the backend rejects is sent again, at most `maxAttempts` times in all; then it is dead-lettered so
 *   it does not block anything (rejections.ts).
 * - Any failure (stream error, the backend ending the stream, no Welcome in time, an ack for a seq never sent,
 *   a backend silent for `deadAfterMs`: uplink-errors.ts) ends the session; after a backoff delay a new session
 *   resends every row not acked (lifecycle.ts). An auth refusal waits long, and says so (is-retryable.ts).
 *
 * Liveness (gRFC A8, uplink.proto "Liveness"). A gRPC server polices HTTP/2 pings: grpc-core (Python, C++, ...)
 * permits one every 5 minutes on a stream that carries no data and answers more with GOAWAY ENHANCE_YOUR_CALM
 * "too_many_pings", so an idle uplink pinging every 10 s was cut every few rounds. The channel now pings only
 * every KEEPALIVE_TIME_MS (5.5 minutes, within every stock server's policy); a dead backend is found with
 * Heartbeat frames instead, when the backend's Welcome says it answers them (heartbeats.ts). A Heartbeat is
 * data, so no ping policy applies, and its answer comes from the backend's stream handler, not just its HTTP/2
 * stack.
 */
import { credentials as grpcCredentials, Metadata } from '@grpc/grpc-js';
import {
  ConnectivityState,
  ConnectivityTracker,
  type Clock,
  DurationHistogram,
  errorMessage,
  systemClock,
  systemTimers,
  type TimerHandle,
  type Timers,
} from '@fleetgate/core';
import type { Logger } from '@fleetgate/common';
import { UplinkClient, type Ack, type DownlinkFrame, type UplinkFrame, type Welcome } from '@fleetgate/protos';
import type { JournalRecord } from '../journal/journal.ts';
import { Heartbeats } from './heartbeats.ts';
import { InflightLedger, splitAround } from './inflight-ledger.ts';
import { Lanes } from './lanes.ts';
import { Lifecycle } from './lifecycle.ts';
import { Rejections } from './rejections.ts';
import { helloFrame, sessionTerms, type UplinkCall } from './session.ts';
import {
  SessionRestartError,
  StreamEndedError,
  UplinkProtocolError,
  WelcomeNotTakenError,
  WelcomeTimeoutError,
} from '../errors.ts';
import type { UplinkOptions } from './uplink-options.ts';
import { channelOptions, type UplinkSettings } from './uplink-settings.ts';
import { newCounters, type UplinkStats } from './uplink-stats.ts';

export { DEFAULT_UPLINK_SETTINGS, KEEPALIVE_TIME_MS, type UplinkSettings } from './uplink-settings.ts';
export type { UplinkOptions } from './uplink-options.ts';
export type { UplinkStats } from './uplink-stats.ts';

export class Uplink {
  readonly connectivity = new ConnectivityTracker();
  /** One channel per upstream address: replicas of the same backend, tried in turn. */
  private readonly clients: Array<{ target: string; client: UplinkClient }>;
  private readonly own: UplinkSettings;
  /** The settings of the current session: the backend's limits narrow them at Welcome. */
  private settings: UplinkSettings;
  private readonly timers: Timers;
  private readonly logger: Logger;
  private readonly lifecycle: Lifecycle;
  private readonly ledger: InflightLedger;
  private readonly clock: Clock;
  /** Batch written -> its Ack (the backend's commit included), per batch. */
  private readonly ackDurations = new DurationHistogram();
  /** A record's arrival at the gateway (gatewayTimeMs) -> the Ack that settled it, per record: the whole path. */
  private readonly deliveryDurations = new DurationHistogram();
  private readonly lanes: Lanes;
  private readonly rejections: Rejections;
  private readonly heartbeats: Heartbeats;
  private readonly counters = newCounters();
  private lastError: string | null = null;
  private call: UplinkCall | undefined;
  private welcomeTimer: TimerHandle | undefined;
  private drainWaiters: Array<() => void> = [];

  constructor(private readonly options: UplinkOptions) {
    const { target, window, maxBatchRecords, maxBatchBytes, welcomeTimeoutMs, reconnectMaxMs, refusedRetryMs } = options;
    const { maxAttempts, backlogWindow, deadAfterMs, keepaliveTimeMs } = options;
    this.own = {
      target,
      window,
      maxBatchRecords,
      maxBatchBytes,
      welcomeTimeoutMs,
      reconnectMaxMs,
      refusedRetryMs,
      maxAttempts,
      backlogWindow,
      deadAfterMs,
      keepaliveTimeMs,
    };
    this.settings = this.own;
    this.logger = options.logger.child({ upstream: options.name ?? target });
    this.timers = options.timers ?? systemTimers;
    const clock = (this.clock = options.clock ?? systemClock);
    this.ledger = new InflightLedger(clock);
    const channel = channelOptions(keepaliveTimeMs, options.serverName);
    this.clients = target.split(',').map((address) => ({
      target: address,
      client: new UplinkClient(address, options.credentials ?? grpcCredentials.createInsecure(), channel),
    }));
    this.lifecycle = new Lifecycle({
      connectivity: this.connectivity,
      targets: this.clients.map((c) => c.target),
      reconnectMaxMs,
      refusedRetryMs: refusedRetryMs ?? reconnectMaxMs,
      logger: this.logger,
      timers: this.timers,
      clock,
      ...(options.backoff ? { backoff: options.backoff } : {}),
      ...(options.getToken ? { getToken: options.getToken } : {}),
      ackedThrough: () => options.journal.ackedThrough,
    });
    this.lanes = new Lanes({
      journal: options.journal,
      ledger: this.ledger,
      counters: this.counters,
      drained: (call) => {
        if (call !== this.call) return;
        this.lanes.resume();
        this.pump();
      },
    });
    this.rejections = new Rejections(maxAttempts);
    this.heartbeats = new Heartbeats(this.timers, clock);
  }

  get state(): ConnectivityState {
    return this.connectivity.state;
  }

  start(): void {
    if (this.state === ConnectivityState.IDLE) this.connect();
  }

  /** New records were committed (or gaps recorded): send what the credit allows. */
  wake(newGaps = false): void {
    if (newGaps) this.lanes.gapsChanged();
    this.pump();
  }

  stats(): UplinkStats {
    return {
      state: this.state,
      target: this.settings.target,
      connectedTo: this.clients[this.lifecycle.target]!.target,
      ackedThrough: this.options.journal.ackedThrough,
      ...this.lanes.stats(),
      batchesInFlight: this.ledger.size,
      ...this.counters,
      lastError: this.lastError,
      refused: this.lifecycle.refused,
      ackDurations: this.ackDurations.snapshot(),
      deliveryDurations: this.deliveryDurations.snapshot(),
    };
  }

  /** Resolves once no batch is in flight (or after `timeoutMs`): for a graceful stop. */
  async drain(timeoutMs: number): Promise<boolean> {
    if (this.ledger.size === 0) return true;
    return new Promise((resolve) => {
      const timer = this.timers.setTimeout(() => resolve(false), timeoutMs);
      this.drainWaiters.push(() => {
        this.timers.clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** Ends the current session (if any) as a failure: the next one resends everything not acked. */
  restart(reason: string): void {
    if (this.call) this.fail(this.call, new SessionRestartError(reason));
  }

  /** Ends the session and stops reconnecting. Unacked batches stay in the journal for the next start. */
  close(): void {
    if (this.state === ConnectivityState.SHUTDOWN) return;
    this.lifecycle.shutdown();
    this.endSession();
    for (const { client } of this.clients) client.close();
  }

  /**
   * Frames other than telemetry (device status, command results): written now if a session is ready, else
   * dropped, as the sender keeps what matters and sends it again from onReady.
   */
  sendControl(frames: readonly UplinkFrame[]): void {
    const call = this.call;
    if (!call || this.state !== ConnectivityState.READY) return;
    for (const frame of frames) call.write(frame);
  }

  private connect(): void {
    this.counters.sessions++;
    const metadata = new Metadata();
    try {
      const token = this.lifecycle.connecting();
      if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
    } catch (err: unknown) {
      // No usable token yet: retry later, an operator may be putting one in place.
      this.counters.failures++;
      this.lastError = this.lifecycle.failed(err, () => this.connect(), false);
      return;
    }
    const call: UplinkCall = this.clients[this.lifecycle.target]!.client.connect(metadata);
    this.call = call;
    call.on('data', (frame: DownlinkFrame) => this.onFrame(call, frame));
    call.on('error', (err: Error) => this.fail(call, err));
    call.on('end', () => this.fail(call, new StreamEndedError()));
    const { welcomeTimeoutMs, deadAfterMs } = this.settings;
    this.welcomeTimer = this.timers.setTimeout(
      () => this.fail(call, new WelcomeTimeoutError(welcomeTimeoutMs)),
      welcomeTimeoutMs,
    );
    this.welcomeTimer.unref?.();
    call.write(helloFrame(this.options.gatewayId, this.options.version, this.options.journal.ackedThrough, deadAfterMs));
  }

  private onFrame(call: UplinkCall, { frame }: DownlinkFrame): void {
    if (call !== this.call) return;
    this.heartbeats.heard();
    switch (frame?.$case) {
      case 'welcome':
        return this.onWelcome(call, frame.value);
      case 'ack':
        return this.onAck(call, frame.value);
      case 'credit':
        // Credit counts from Welcome on, which sets the first grant (uplink.proto, Credit).
        if (this.state !== ConnectivityState.READY) return this.logger.debug('ignoring a Credit frame before Welcome');
        this.lanes.grant(frame.value.batches);
        return this.pump();
      case 'heartbeat':
        this.counters.heartbeatsAnswered++;
        return;
      case 'command':
        return this.options.onCommand?.(frame.value);
      case 'commandAck':
        return this.options.onCommandAck?.(frame.value);
      default:
        // A newer backend may send frames this gateway does not know yet; they are not errors.
        this.logger.debug('ignoring an unknown downlink frame');
    }
  }

  private onWelcome(call: UplinkCall, welcome: Welcome): void {
    if (this.state !== ConnectivityState.CONNECTING) {
      return this.fail(call, new UplinkProtocolError('a second Welcome on the same stream'));
    }
    this.clearWelcomeTimer();
    const { settings, credit } = sessionTerms(this.own, welcome);
    this.settings = settings;
    // The renumbering request: the journal may move its rows before the lanes see where it stands.
    try {
      this.options.onWelcome?.(welcome.lastCommittedSeq);
    } catch (err: unknown) {
      return this.fail(call, new WelcomeNotTakenError(err));
    }
    this.ledger.clear();
    this.lanes.begin(credit);
    this.heartbeats.begin();
    this.lifecycle.ready();
    if (welcome.answersHeartbeats) {
      this.heartbeats.watch(settings.deadAfterMs, {
        alive: () => call === this.call,
        ask: (heartbeat) => {
          this.counters.heartbeatsSent++;
          call.write({ frame: { $case: 'heartbeat', value: heartbeat } });
        },
        dead: (err) => this.fail(call, err),
      });
    }
    this.options.onReady?.();
    this.pump();
  }

  private onAck(call: UplinkCall, ack: Ack): void {
    const outcome = this.ledger.settle(ack, {
      contiguousThrough: this.lanes.contiguousThrough,
      ackedThrough: this.options.journal.ackedThrough,
      isGapSent: (from, to) => this.lanes.isGapSent(from, to),
    });
    if (!outcome.ok) return this.fail(call, outcome.error);
    this.counters.acks++;
    const { from, through, settled } = outcome;
    const now = this.clock.now();
    for (const batch of settled) {
      this.ackDurations.observe(now - batch.sentAtMs);
      for (const record of batch.records) this.deliveryDurations.observe(Math.max(0, now - record.gatewayTimeMs));
    }
    const rejected = new Map(ack.rejected.map((r) => [r.seq, r.reason]));
    if (rejected.size > 0) {
      for (const batch of settled) {
        for (const record of batch.records) {
          const reason = rejected.get(record.seq);
          if (reason !== undefined) this.onRejected(record, reason);
        }
      }
    }
    if (from <= through) for (const range of splitAround(from, through, [...rejected.keys()])) this.options.onReleased(range);
    if (this.ledger.size === 0) for (const resolve of this.drainWaiters.splice(0)) resolve();
    this.pump();
  }

  private onRejected(record: JournalRecord, reason: string): void {
    this.counters.rejections++;
    if (this.rejections.rejected(record.seq, this.options.onDeadLetter !== undefined) === 'resend') {
      return this.lanes.retry(record.seq);
    }
    this.counters.deadLettered++;
    this.logger.warn({ seq: record.seq, deviceId: record.deviceId, reason }, 'record rejected by the backend: dead-lettered');
    this.options.onDeadLetter?.(record, reason);
  }

  private pump(): void {
    const call = this.call;
    if (!call || this.state !== ConnectivityState.READY) return;
    this.lanes.pump(call, this.settings);
  }

  /** Ends the session `call` (if it is still the current one) and schedules the next attempt. */
  private fail(call: UplinkCall, err: Error): void {
    if (call !== this.call) return;
    this.endSession();
    this.counters.failures++;
    this.lastError = errorMessage(err);
    if (this.state === ConnectivityState.SHUTDOWN) return;
    this.lastError = this.lifecycle.failed(err, () => this.connect());
  }

  private endSession(): void {
    const call = this.call;
    this.call = undefined;
    this.clearWelcomeTimer();
    this.heartbeats.stop();
    this.ledger.clear();
    this.lanes.end();
    for (const resolve of this.drainWaiters.splice(0)) resolve();
    if (call) {
      // Events of an ended session are ignored (call !== this.call); keep an error listener so none is thrown.
      call.removeAllListeners();
      call.on('error', () => {});
      call.cancel();
    }
  }

  private clearWelcomeTimer(): void {
    if (this.welcomeTimer !== undefined) {
      this.timers.clearTimeout(this.welcomeTimer);
      this.welcomeTimer = undefined;
    }
  }
}
