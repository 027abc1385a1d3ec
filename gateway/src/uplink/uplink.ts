/**
 * The uplink: streams the journal to one backend over a long-lived bidirectional gRPC stream.
 *
 *   connect -> Hello{lastAckedSeq} -> Welcome{limits: first credit} -> READY
 *   -> batches: the live lane first, the backlog lane with the credit left -> Ack{from, through} per batch
 *   -> the acked range is freed in the journal; Credit{n} from the backend lets n more batches go
 *
 * Lanes. When a session becomes ready, what the journal holds up to then is the backlog (after an outage, maybe
 * millions of rows); what is committed afterwards is live. Live batches go first, so fresh data does not wait
 * behind a replay; the backlog drains with the credit left, always keeping LIVE_RESERVE credits for live data,
 * and at most `backlogWindow` batches in flight, so that live data never queues behind much of it at the backend.
 * The backend grants credit as it commits, so a replay never floods it. Each lane is sent in seq order and each
 * batch is acked by its range, so rows are freed exactly as the backend has them; the backend orders each
 * device's records by seq whatever the lane.
 *
 * Other rules:
 * - At most `window` batches are unacked at once, whatever the credit: a backend that stops acking makes the
 *   journal grow, not the gateway's memory. grpc-js backpressure is honoured (write() false -> wait 'drain').
 * - Gaps (records the journal had to let go of) are sent before anything else, once per session, until acked.
 * - A record the backend rejects is sent again, at most `maxAttempts` times in all; then it is dead-lettered so
 *   it does not block anything.
 * - Any failure (stream error, the backend ending the stream, no Welcome in time, an ack for a seq never sent,
 *   a backend silent for `deadAfterMs`) ends the session; after a backoff delay (exponential, full jitter) a new
 *   session resends every row not acked.
 *
 * Liveness (gRFC A8, uplink.proto "Liveness"). A gRPC server polices HTTP/2 pings: grpc-core (Python, C++, ...)
 * permits one every 5 minutes on a stream that carries no data and answers more with GOAWAY ENHANCE_YOUR_CALM
 * "too_many_pings", so an idle uplink pinging every 10 s was cut every few rounds. The channel now pings only
 * every KEEPALIVE_TIME_MS (5.5 minutes, within every stock server's policy); a dead backend is found with
 * Heartbeat frames instead, when the backend's Welcome says it answers them: after deadAfterMs / 2 without
 * hearing anything the gateway sends one, after deadAfterMs it gives the stream up. A Heartbeat is data, so no
 * ping policy applies, and its answer comes from the backend's stream handler, not just its HTTP/2 stack.
 */
import { credentials as grpcCredentials, Metadata, type ChannelCredentials, type ClientDuplexStream } from '@grpc/grpc-js';
import {
  Backoff,
  type Clock,
  ConnectivityState,
  ConnectivityTracker,
  errorMessage,
  LogSampler,
  systemClock,
  systemTimers,
  type TimerHandle,
  type Timers,
} from '@fleetgate/core';
import type { Logger } from '@fleetgate/common';
import {
  UplinkClient,
  type Ack,
  type Command,
  type CommandAck,
  type DownlinkFrame,
  type UplinkFrame,
  type Welcome,
} from '@fleetgate/protos';
import type { Gap, JournalRecord, SeqRange } from '../journal/journal.ts';

export interface UplinkSettings {
  /** The backend, "host:port". */
  target: string;
  /** At most this many batches unacked at once (and the credit assumed when the backend grants none). */
  window: number;
  maxBatchRecords: number;
  /** Payload bytes per batch (a single larger record still goes, alone). */
  maxBatchBytes: number;
  /** A session that gets no Welcome within this time is given up and retried. */
  welcomeTimeoutMs: number;
  /** Ceiling of the reconnect backoff (exponential from 100 ms, full jitter). */
  reconnectMaxMs: number;
  /** Times a record the backend rejects is sent, in all, before it is dead-lettered. */
  maxAttempts: number;
  /**
   * Backlog batches in flight at most. The backend commits batches in the order they come, so live data waits
   * behind every backlog batch sent before it; a few keep the backend busy (its commit is the bottleneck of a
   * replay) without queueing much in front of live data.
   */
  backlogWindow: number;
  /**
   * A stream on which nothing came from the backend for this long is given up as dead; a Heartbeat asks after
   * half of it. Only with a backend that answers heartbeats (Welcome.answers_heartbeats). It must exceed the
   * time one batch takes over the slowest link plus the backend's commit, or a slow link looks dead.
   */
  deadAfterMs: number;
  /** HTTP/2 keepalive ping interval of the channel (KEEPALIVE_TIME_MS; settable for tests that scale time down). */
  keepaliveTimeMs: number;
}

/**
 * HTTP/2 keepalive: grpc-core, grpc-go and grpc-java servers permit a ping every 5 minutes by default
 * (grpc.http2.min_ping_interval_without_data_ms 300000; Go's MinTime, Java's permitKeepAliveTime); 10% more
 * keeps clear of it. Dead-peer detection is the heartbeat's job, this only keeps middleboxes from forgetting an
 * idle connection to a backend that does not answer heartbeats.
 */
export const KEEPALIVE_TIME_MS = 330_000;

/**
 * Enough in flight to cover the round trip (send, backend commit, ack) at ~100k records/s on a busy 2-core
 * machine, where a round trip can take 50 ms or more: 16 batches of up to 1,000 records (at most 16 MiB).
 */
export const DEFAULT_UPLINK_SETTINGS: Omit<UplinkSettings, 'target'> = {
  window: 16,
  maxBatchRecords: 1000,
  maxBatchBytes: 1 << 20,
  welcomeTimeoutMs: 10_000,
  reconnectMaxMs: 10_000,
  maxAttempts: 3,
  backlogWindow: 2,
  deadAfterMs: 20_000,
  keepaliveTimeMs: KEEPALIVE_TIME_MS,
};

/** The same session failure is logged as a warning at most this often. */
const FAILURE_LOG_EVERY_MS = 60_000;

/** Credits the backlog leaves for live data. */
const LIVE_RESERVE = 2;

/** What the uplink reads: the journal through its tail cache. */
export interface UplinkJournal {
  readAfter(afterSeq: number, maxRecords: number, maxBytes: number, throughSeq?: number): JournalRecord[];
  readonly lastSeq: number;
  readonly ackedThrough: number;
  gaps(): Gap[];
}

export interface UplinkOptions extends UplinkSettings {
  /** The upstream's name (logs); its addresses if absent. */
  name?: string;
  gatewayId: string;
  /** The gateway's version, sent in Hello. */
  version: string;
  journal: UplinkJournal;
  /** The backend committed this range (or took note of this gap): free it. */
  onReleased: (range: SeqRange) => void;
  /** The backend rejected this record `maxAttempts` times: move it out of the way. */
  onDeadLetter?: (record: JournalRecord, reason: string) => void;
  /**
   * Welcome arrived, saying the last seq the backend holds; called before anything is sent in the session, so
   * that a journal that is not the one the backend knows can move its rows above those seqs.
   */
  onWelcome?: (lastCommittedSeq: number) => void;
  logger: Logger;
  backoff?: Backoff;
  timers?: Timers;
  clock?: Clock;
  /** TLS to the backend (grpc-js credentials); plain TCP if absent. */
  credentials?: ChannelCredentials;
  /** Overrides the host name the backend's certificate must carry. */
  serverName?: string;
  /** This gateway's token, asked before every session (so a replaced token file is picked up); throws if none. */
  getToken?: () => string;
  /** A command from the backend. */
  onCommand?: (command: Command) => void;
  /** The backend recorded a command status. */
  onCommandAck?: (ack: CommandAck) => void;
  /** A session became ready: the moment to send what the backend must know (device statuses, results). */
  onReady?: () => void;
}

type Lane = 'live' | 'backlog' | 'retry';

interface Batch extends SeqRange {
  lane: Lane;
  records: JournalRecord[];
}

export interface UplinkStats {
  state: ConnectivityState;
  /** The configured upstream(s), comma-separated. */
  target: string;
  /** The upstream of the current (or last) session. */
  connectedTo: string;
  /** Every row through this seq is acked or gone (the journal's low-water mark). */
  ackedThrough: number;
  /** Highest seq sent in the current session (either lane). */
  sentThrough: number;
  lanes: { liveFrom: number; liveSentThrough: number; backlogSentThrough: number; backlogRemaining: boolean };
  credit: number;
  batchesInFlight: number;
  batchesSent: number;
  recordsSent: number;
  /** Records sent again after a reconnect (already sent once, not acked then). */
  recordsResent: number;
  acks: number;
  gapsSent: number;
  rejections: number;
  deadLettered: number;
  /** Times the stream would take no more (write() returned false) and the sender waited for 'drain'. */
  drainWaits: number;
  /** Heartbeats sent (to a backend that answers them) and answers received. */
  heartbeatsSent: number;
  heartbeatsAnswered: number;
  /** Sessions started (connection attempts). */
  sessions: number;
  failures: number;
  lastError: string | null;
}

/**
 * Keepalive pings only at the rate stock servers permit (see KEEPALIVE_TIME_MS), and only while the stream is
 * open (no permit_without_calls: between sessions a server's limit is 2 hours). Heartbeats find a dead peer.
 */
const CHANNEL_OPTIONS = {
  'grpc.keepalive_timeout_ms': 20_000,
  'grpc.keepalive_permit_without_calls': 0,
  // The channel's own reconnect backoff defaults to 1 s growing to 120 s; the session backoff below is the one
  // that matters, so keep the channel's short.
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 5_000,
  'grpc.max_receive_message_length': 16 << 20,
  'grpc.max_send_message_length': 64 << 20,
};

type Call = ClientDuplexStream<UplinkFrame, DownlinkFrame>;

export class Uplink {
  readonly connectivity = new ConnectivityTracker();
  /** One channel per upstream address: replicas of the same backend, tried in turn. */
  private readonly clients: Array<{ target: string; client: UplinkClient }>;
  private current = 0;
  private readonly backoff: Backoff;
  private readonly timers: Timers;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private settings: UplinkSettings;

  private call: Call | undefined;
  private welcomeTimer: TimerHandle | undefined;
  private waitingForDrain = false;
  /** Unacked batches of this session, by their last seq. */
  private inflight = new Map<number, Batch>();
  private credit = 0;
  private liveFrom = 0;
  private liveSent = 0;
  private backlogSent = 0;
  private gapsDirty = true;
  /** Gaps sent on this session: from -> to. */
  private gapsSent = new Map<number, number>();
  private retries: number[] = [];
  /** Rejections so far per seq (for the whole life of the process). */
  private readonly attempts = new Map<number, number>();
  /** Highest seq ever written on any session: what is sent again at or below it is a resend. */
  private everSent = 0;
  private drainWaiters: Array<() => void> = [];
  /** When the current session last heard from the backend (clock ms). */
  private heardAt = 0;
  /** The quiet period (by its heardAt) a Heartbeat was already sent for. */
  private askedAt = -1;
  private watchdog: TimerHandle | undefined;
  private heartbeatId = 0;
  private readonly counters = {
    batchesSent: 0,
    recordsSent: 0,
    recordsResent: 0,
    acks: 0,
    gapsSent: 0,
    rejections: 0,
    deadLettered: 0,
    drainWaits: 0,
    heartbeatsSent: 0,
    heartbeatsAnswered: 0,
    sessions: 0,
    failures: 0,
  };
  private lastError: string | null = null;

  constructor(private readonly options: UplinkOptions) {
    const {
      target,
      window,
      maxBatchRecords,
      maxBatchBytes,
      welcomeTimeoutMs,
      reconnectMaxMs,
      maxAttempts,
      backlogWindow,
      deadAfterMs,
      keepaliveTimeMs,
    } = options;
    this.settings = {
      target,
      window,
      maxBatchRecords,
      maxBatchBytes,
      welcomeTimeoutMs,
      reconnectMaxMs,
      maxAttempts,
      backlogWindow,
      deadAfterMs,
      keepaliveTimeMs,
    };
    this.logger = options.logger.child({ upstream: options.name ?? target });
    this.timers = options.timers ?? systemTimers;
    this.clock = options.clock ?? systemClock;
    this.backoff =
      options.backoff ??
      new Backoff({ initialMs: Math.min(100, reconnectMaxMs), maxMs: reconnectMaxMs, multiplier: 2, timers: this.timers });
    this.clients = target.split(',').map((address) => ({
      target: address,
      client: new UplinkClient(address, options.credentials ?? grpcCredentials.createInsecure(), {
        ...CHANNEL_OPTIONS,
        'grpc.keepalive_time_ms': keepaliveTimeMs,
        ...(options.serverName
          ? { 'grpc.ssl_target_name_override': options.serverName, 'grpc.default_authority': options.serverName }
          : {}),
      }),
    }));
    this.everSent = options.journal.ackedThrough;
    // While a backend is down every attempt fails the same way: one warning a minute for the same reason (with how
    // many were left out), the attempts themselves at debug, so that a day-long outage is not a flood in journald.
    const failures = new LogSampler(FAILURE_LOG_EVERY_MS);
    this.connectivity.on('state', ({ state, previous, reason }) => {
      if (state === ConnectivityState.CONNECTING) return this.logger.debug({ state, previous }, 'uplink connecting');
      const fields = { state, previous, reason, ackedThrough: this.options.journal.ackedThrough };
      if (state !== ConnectivityState.TRANSIENT_FAILURE) return this.logger.info(fields, `uplink ${state}`);
      const suppressed = failures.take((reason ?? '').replace(/\d+/g, '#')); // grpc-js puts times in its messages
      if (suppressed === undefined) this.logger.debug(fields, `uplink ${state}`);
      else this.logger.warn({ ...fields, ...(suppressed > 0 ? { suppressed } : {}) }, `uplink ${state}`);
    });
  }

  get state(): ConnectivityState {
    return this.connectivity.state;
  }

  start(): void {
    if (this.state === ConnectivityState.IDLE) this.connect();
  }

  /** New records were committed (or gaps recorded): send what the credit allows. */
  wake(newGaps = false): void {
    if (newGaps) this.gapsDirty = true;
    this.pump();
  }

  stats(): UplinkStats {
    return {
      state: this.state,
      target: this.settings.target,
      connectedTo: this.clients[this.current]!.target,
      ackedThrough: this.options.journal.ackedThrough,
      sentThrough: Math.max(this.liveSent, this.backlogSent),
      lanes: {
        liveFrom: this.liveFrom,
        liveSentThrough: this.liveSent,
        backlogSentThrough: this.backlogSent,
        backlogRemaining: this.backlogSent < this.liveFrom,
      },
      credit: this.credit,
      batchesInFlight: this.inflight.size,
      ...this.counters,
      lastError: this.lastError,
    };
  }

  /** Resolves once no batch is in flight (or after `timeoutMs`): for a graceful stop. */
  async drain(timeoutMs: number): Promise<boolean> {
    if (this.inflight.size === 0) return true;
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
    if (this.call) this.fail(this.call, new Error(reason));
  }

  /** Ends the session and stops reconnecting. Unacked batches stay in the journal for the next start. */
  close(): void {
    if (this.state === ConnectivityState.SHUTDOWN) return;
    this.connectivity.set(ConnectivityState.SHUTDOWN);
    this.backoff.cancel();
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
    this.connectivity.set(ConnectivityState.CONNECTING);
    this.counters.sessions++;
    const metadata = new Metadata();
    try {
      if (this.options.getToken) metadata.set('authorization', `Bearer ${this.options.getToken()}`);
    } catch (err: unknown) {
      // No usable token yet: retry later, an operator may be putting one in place.
      this.lastError = `no token for the backend: ${errorMessage(err)}`;
      this.counters.failures++;
      this.connectivity.set(ConnectivityState.TRANSIENT_FAILURE, this.lastError);
      this.backoff.schedule(() => this.state !== ConnectivityState.SHUTDOWN && this.connect());
      return;
    }
    const call = this.clients[this.current]!.client.connect(metadata);
    this.call = call;
    call.on('data', (frame: DownlinkFrame) => this.onFrame(call, frame));
    call.on('error', (err: Error) => this.fail(call, err));
    call.on('end', () => this.fail(call, new Error('the backend ended the stream')));
    this.welcomeTimer = this.timers.setTimeout(
      () => this.fail(call, new Error(`no Welcome within ${this.settings.welcomeTimeoutMs} ms`)),
      this.settings.welcomeTimeoutMs,
    );
    this.welcomeTimer.unref?.();
    call.write({
      frame: {
        $case: 'hello',
        value: {
          gatewayId: this.options.gatewayId,
          version: this.options.version,
          lastAckedSeq: this.options.journal.ackedThrough,
          heartbeatIntervalMs: Math.floor(this.settings.deadAfterMs / 2),
        },
      },
    });
  }

  private onFrame(call: Call, { frame }: DownlinkFrame): void {
    if (call !== this.call) return;
    this.heardAt = this.clock.now();
    switch (frame?.$case) {
      case 'welcome':
        return this.onWelcome(call, frame.value);
      case 'ack':
        return this.onAck(call, frame.value);
      case 'credit':
        // Credit counts from Welcome on, which sets the first grant (uplink.proto, Credit).
        if (this.state !== ConnectivityState.READY) return this.logger.debug('ignoring a Credit frame before Welcome');
        this.credit += frame.value.batches;
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

  private onWelcome(call: Call, welcome: Welcome): void {
    if (this.state !== ConnectivityState.CONNECTING) {
      return this.fail(call, new Error('protocol error: a second Welcome on the same stream'));
    }
    this.clearWelcomeTimer();
    const limits = welcome.limits;
    // The backend's limits can only make batches smaller, never the reverse.
    const narrow = (own: number, theirs: number | undefined) => (theirs ? Math.min(own, theirs) : own);
    this.settings = {
      ...this.settings,
      maxBatchRecords: narrow(this.options.maxBatchRecords, limits?.maxBatchRecords),
      maxBatchBytes: narrow(this.options.maxBatchBytes, limits?.maxBatchBytes),
    };
    this.options.onWelcome?.(welcome.lastCommittedSeq);
    this.credit = limits?.maxBatchesInFlight || this.options.window;
    this.inflight = new Map();
    this.liveFrom = this.liveSent = this.options.journal.lastSeq;
    this.backlogSent = this.options.journal.ackedThrough;
    this.gapsSent = new Map();
    this.gapsDirty = true;
    this.retries = [];
    this.waitingForDrain = false;
    this.askedAt = -1;
    this.backoff.reset();
    this.connectivity.set(ConnectivityState.READY);
    if (welcome.answersHeartbeats) this.watch(call);
    this.options.onReady?.();
    this.pump();
  }

  /**
   * The heartbeat watchdog of a session whose backend answers heartbeats: half of deadAfterMs without hearing
   * anything sends a Heartbeat (once per quiet spell), all of it ends the session. One timer, re-armed from
   * the time last heard, so frames arriving cost no timer work.
   */
  private watch(call: Call): void {
    if (call !== this.call) return;
    const { deadAfterMs } = this.settings;
    const askAfter = Math.floor(deadAfterMs / 2);
    const quiet = this.clock.now() - this.heardAt;
    if (quiet >= deadAfterMs) {
      return this.fail(
        call,
        new Error(`the backend sent nothing for ${quiet} ms, not even a heartbeat answer (dead after ${deadAfterMs} ms)`),
      );
    }
    if (quiet >= askAfter && this.askedAt !== this.heardAt) {
      this.askedAt = this.heardAt;
      this.counters.heartbeatsSent++;
      call.write({ frame: { $case: 'heartbeat', value: { id: ++this.heartbeatId, timeMs: this.clock.now() } } });
    }
    const wait = (quiet >= askAfter ? deadAfterMs : askAfter) - quiet;
    this.watchdog = this.timers.setTimeout(() => this.watch(call), Math.max(1, wait));
    this.watchdog.unref?.();
  }

  /**
   * An ack names one batch or gap by its range, or (from_seq 0) everything through a seq: then only as far as
   * this session sent without a hole (with lanes, a cumulative ack over the live lane would cover backlog rows
   * not sent yet). Anything else is a protocol error: freeing rows the backend does not have would lose them.
   */
  private onAck(call: Call, ack: Ack): void {
    const through = ack.throughSeq;
    let from = ack.fromSeq;
    if (from === 0) {
      const contiguous = this.backlogSent < this.liveFrom ? this.backlogSent : this.liveSent;
      if (through > contiguous)
        return this.fail(
          call,
          new Error(`protocol error: ack through ${through}, but only ${contiguous} was sent without a hole`),
        );
      from = this.options.journal.ackedThrough + 1;
    } else if (this.inflight.get(through)?.from !== from && this.gapsSent.get(from) !== through) {
      return this.fail(call, new Error(`protocol error: ack for ${from}..${through}, which is no batch or gap in flight`));
    }
    this.counters.acks++;
    const rejected = new Map(ack.rejected.map((r) => [r.seq, r.reason]));
    for (const [last, batch] of this.inflight) {
      if (batch.from >= from && last <= through) {
        this.inflight.delete(last);
        for (const record of batch.records) {
          const reason = rejected.get(record.seq);
          if (reason !== undefined) this.onRejected(record, reason);
        }
      }
    }
    if (from <= through) for (const range of splitAround(from, through, [...rejected.keys()])) this.options.onReleased(range);
    if (this.inflight.size === 0) for (const resolve of this.drainWaiters.splice(0)) resolve();
    this.pump();
  }

  private onRejected(record: JournalRecord, reason: string): void {
    this.counters.rejections++;
    const attempts = (this.attempts.get(record.seq) ?? 1) + 1;
    if (attempts > this.settings.maxAttempts || !this.options.onDeadLetter) {
      this.attempts.delete(record.seq);
      this.counters.deadLettered++;
      this.logger.warn({ seq: record.seq, deviceId: record.deviceId, reason }, 'record rejected by the backend: dead-lettered');
      this.options.onDeadLetter?.(record, reason);
      return;
    }
    this.attempts.set(record.seq, attempts);
    this.retries.push(record.seq);
  }

  private pump(): void {
    const call = this.call;
    if (!call || this.state !== ConnectivityState.READY) return;
    if (this.gapsDirty) this.sendGaps(call);
    const { window, maxBatchRecords, maxBatchBytes } = this.settings;
    while (!this.waitingForDrain && this.credit > 0 && this.inflight.size < window) {
      const journal = this.options.journal;
      const live = journal.readAfter(this.liveSent, maxBatchRecords, maxBatchBytes);
      if (live.length > 0) {
        this.send(call, 'live', live);
        this.liveSent = live[live.length - 1]!.seq;
        continue;
      }
      if (this.credit <= LIVE_RESERVE && this.inflight.size > 0) return;
      const retry = this.retries.shift();
      if (retry !== undefined) {
        const record = journal.readAfter(retry - 1, 1, maxBatchBytes, retry);
        if (record.length > 0) this.send(call, 'retry', record);
        continue;
      }
      if (this.backlogSent < this.liveFrom) {
        if (this.inflightOn('backlog') >= this.settings.backlogWindow) return;
        const backlog = journal.readAfter(this.backlogSent, maxBatchRecords, maxBatchBytes, this.liveFrom);
        this.backlogSent = backlog.length > 0 ? backlog[backlog.length - 1]!.seq : this.liveFrom;
        if (backlog.length > 0) this.send(call, 'backlog', backlog);
        continue;
      }
      return;
    }
  }

  private inflightOn(lane: Lane): number {
    let n = 0;
    for (const batch of this.inflight.values()) if (batch.lane === lane) n++;
    return n;
  }

  private send(call: Call, lane: Lane, records: JournalRecord[]): void {
    const from = records[0]!.seq;
    const to = records[records.length - 1]!.seq;
    if (from <= this.everSent) this.counters.recordsResent += records.filter((r) => r.seq <= this.everSent).length;
    const writable = call.write({ frame: { $case: 'batch', value: { records } } });
    this.inflight.set(to, { from, to, lane, records });
    this.credit--;
    this.everSent = Math.max(this.everSent, to);
    this.counters.batchesSent++;
    this.counters.recordsSent += records.length;
    if (!writable) {
      this.waitingForDrain = true;
      this.counters.drainWaits++;
      call.once('drain', () => {
        if (call !== this.call) return;
        this.waitingForDrain = false;
        this.pump();
      });
    }
  }

  /** Gaps not yet sent on this session: small, sent ahead of any batch, needing no credit. */
  private sendGaps(call: Call): void {
    this.gapsDirty = false;
    for (const gap of this.options.journal.gaps()) {
      if (this.gapsSent.has(gap.from)) continue;
      this.gapsSent.set(gap.from, gap.to);
      this.counters.gapsSent++;
      call.write({
        frame: {
          $case: 'gap',
          value: { fromSeq: gap.from, toSeq: gap.to, reason: gap.reason, count: gap.count, timeMs: gap.timeMs },
        },
      });
    }
  }

  /** Ends the session `call` (if it is still the current one) and schedules the next attempt. */
  private fail(call: Call, err: Error): void {
    if (call !== this.call) return;
    this.endSession();
    this.counters.failures++;
    this.lastError = errorMessage(err);
    if (this.state === ConnectivityState.SHUTDOWN) return;
    // With several upstreams (replicas of one backend), the next attempt goes to the next one: any replica can
    // take this gateway's stream, and it resumes from the last ack as after any reconnect.
    if (this.clients.length > 1) {
      this.current = (this.current + 1) % this.clients.length;
      this.lastError += `; next: ${this.clients[this.current]!.target}`;
    }
    this.connectivity.set(ConnectivityState.TRANSIENT_FAILURE, this.lastError);
    this.backoff.schedule(() => {
      if (this.state !== ConnectivityState.SHUTDOWN) this.connect();
    });
  }

  private endSession(): void {
    const call = this.call;
    this.call = undefined;
    this.clearWelcomeTimer();
    if (this.watchdog !== undefined) this.timers.clearTimeout(this.watchdog);
    this.watchdog = undefined;
    this.inflight = new Map();
    this.credit = 0;
    this.waitingForDrain = false;
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

/** from..to without the given seqs, as ranges. */
function splitAround(from: number, to: number, holes: number[]): SeqRange[] {
  const ranges: SeqRange[] = [];
  let start = from;
  for (const hole of holes.filter((h) => h >= from && h <= to).sort((a, b) => a - b)) {
    if (hole > start) ranges.push({ from: start, to: hole - 1 });
    start = hole + 1;
  }
  if (start <= to) ranges.push({ from: start, to });
  return ranges;
}
