/**
 * The uplink: streams the journal to one backend over a long-lived bidirectional gRPC stream.
 *
 *   connect -> Hello{lastAckedSeq} -> Welcome -> READY: send batches while the window allows -> Ack{throughSeq}
 *
 * - Batches are read from the journal in seq order, bounded by count and payload bytes.
 * - At most `window` batches are unacked at once; the sender stops there until acks return, so a backend that
 *   stops acking makes the journal grow rather than the gateway's memory.
 * - grpc-js backpressure is honoured: when write() returns false, nothing more is written until 'drain'.
 * - Acks are cumulative. Each one is handed to `onAcked`, which frees the journal rows through it.
 * - Any failure (stream error, the backend ending the stream, no Welcome in time, an ack for a seq never
 *   sent) ends the session; after a backoff delay (exponential, full jitter) a new session says Hello with the
 *   last acked seq and resends everything after it. The backend dedupes, so resends are harmless.
 */
import { credentials as grpcCredentials, Metadata, type ChannelCredentials, type ClientDuplexStream } from '@grpc/grpc-js';
import {
  Backoff,
  ConnectivityState,
  ConnectivityTracker,
  errorMessage,
  systemTimers,
  type Logger,
  type TimerHandle,
  type Timers,
} from '@fleetgate/common';
import { UplinkClient, type Command, type CommandAck, type DownlinkFrame, type UplinkFrame, type Welcome } from '@fleetgate/protos';
import type { Journal } from '../journal/journal.ts';

export interface UplinkSettings {
  /** The backend, "host:port". */
  target: string;
  /** At most this many batches unacked at once. */
  window: number;
  maxBatchRecords: number;
  /** Payload bytes per batch (a single larger record still goes, alone). */
  maxBatchBytes: number;
  /** A session that gets no Welcome within this time is given up and retried. */
  welcomeTimeoutMs: number;
  /** Ceiling of the reconnect backoff (exponential from 100 ms, full jitter). */
  reconnectMaxMs: number;
}

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
};

export interface UplinkOptions extends UplinkSettings {
  gatewayId: string;
  /** The gateway's version, sent in Hello. */
  version: string;
  /** Where the records come from; only reads. */
  journal: Pick<Journal, 'readAfter' | 'ackedThrough'>;
  /** Called with each new cumulative ack: every record through `throughSeq` is durable at the backend. */
  onAcked: (throughSeq: number) => void;
  logger: Logger;
  backoff?: Backoff;
  timers?: Timers;
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

export interface UplinkStats {
  state: ConnectivityState;
  target: string;
  /** Highest seq the backend acked. */
  ackedThrough: number;
  /** Highest seq sent in the current session. */
  sentThrough: number;
  batchesInFlight: number;
  batchesSent: number;
  recordsSent: number;
  /** Records sent again after a reconnect (already sent once, not acked then). */
  recordsResent: number;
  acks: number;
  /** Times the stream would take no more (write() returned false) and the sender waited for 'drain'. */
  drainWaits: number;
  /** Sessions started (connection attempts). */
  sessions: number;
  failures: number;
  lastError: string | null;
}

/** Keepalive finds a dead TCP connection (a NAT that forgot us, a cable pulled) within ~15 s. */
const CHANNEL_OPTIONS = {
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
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
  private readonly client: UplinkClient;
  private readonly backoff: Backoff;
  private readonly timers: Timers;
  private readonly logger: Logger;
  private settings: UplinkSettings;

  private call: Call | undefined;
  private welcomeTimer: TimerHandle | undefined;
  private waitingForDrain = false;
  /** lastSeq of each unacked batch of the current session, oldest first. */
  private inflight: number[] = [];
  private acked: number;
  private sent: number;
  /** Highest seq ever written on any session: what is sent again at or below it is a resend. */
  private everSent: number;
  private readonly counters = { batchesSent: 0, recordsSent: 0, recordsResent: 0, acks: 0, drainWaits: 0, sessions: 0, failures: 0 };
  private lastError: string | null = null;

  constructor(private readonly options: UplinkOptions) {
    const { target, window, maxBatchRecords, maxBatchBytes, welcomeTimeoutMs, reconnectMaxMs } = options;
    this.settings = { target, window, maxBatchRecords, maxBatchBytes, welcomeTimeoutMs, reconnectMaxMs };
    this.logger = options.logger.child({ upstream: target });
    this.timers = options.timers ?? systemTimers;
    this.backoff =
      options.backoff ?? new Backoff({ initialMs: Math.min(100, reconnectMaxMs), maxMs: reconnectMaxMs, multiplier: 2, timers: this.timers });
    this.client = new UplinkClient(target, options.credentials ?? grpcCredentials.createInsecure(), {
      ...CHANNEL_OPTIONS,
      ...(options.serverName ? { 'grpc.ssl_target_name_override': options.serverName, 'grpc.default_authority': options.serverName } : {}),
    });
    this.acked = this.sent = this.everSent = options.journal.ackedThrough;
    this.connectivity.on('state', ({ state, previous, reason }) => {
      const log = state === ConnectivityState.TRANSIENT_FAILURE ? this.logger.warn : this.logger.info;
      log.call(this.logger, { state, previous, reason, ackedThrough: this.acked }, `uplink ${state}`);
    });
  }

  get state(): ConnectivityState {
    return this.connectivity.state;
  }

  start(): void {
    if (this.state === ConnectivityState.IDLE) this.connect();
  }

  /** New records were committed: send them if the window allows. */
  wake(): void {
    this.pump();
  }

  stats(): UplinkStats {
    return {
      state: this.state,
      target: this.settings.target,
      ackedThrough: this.acked,
      sentThrough: this.sent,
      batchesInFlight: this.inflight.length,
      ...this.counters,
      lastError: this.lastError,
    };
  }

  /** Ends the session and stops reconnecting. Unacked batches stay in the journal for the next start. */
  close(): void {
    if (this.state === ConnectivityState.SHUTDOWN) return;
    this.connectivity.set(ConnectivityState.SHUTDOWN);
    this.backoff.cancel();
    this.endSession();
    this.client.close();
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
    const call = this.client.connect(metadata);
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
      frame: { $case: 'hello', value: { gatewayId: this.options.gatewayId, version: this.options.version, lastAckedSeq: this.acked } },
    });
  }

  private onFrame(call: Call, { frame }: DownlinkFrame): void {
    if (call !== this.call) return;
    switch (frame?.$case) {
      case 'welcome':
        return this.onWelcome(call, frame.value);
      case 'ack':
        return this.onAck(call, frame.value.throughSeq);
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
    // The backend's limits can only make batches smaller or the window narrower, never the reverse.
    const narrow = (own: number, theirs: number | undefined) => (theirs ? Math.min(own, theirs) : own);
    this.settings = {
      ...this.settings,
      window: narrow(this.options.window, limits?.maxBatchesInFlight),
      maxBatchRecords: narrow(this.options.maxBatchRecords, limits?.maxBatchRecords),
      maxBatchBytes: narrow(this.options.maxBatchBytes, limits?.maxBatchBytes),
    };
    this.inflight = [];
    this.sent = this.acked;
    this.waitingForDrain = false;
    this.backoff.reset();
    this.connectivity.set(ConnectivityState.READY);
    this.options.onReady?.();
    this.pump();
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

  private onAck(call: Call, throughSeq: number): void {
    if (throughSeq > this.sent) {
      return this.fail(call, new Error(`protocol error: ack through ${throughSeq}, but only ${this.sent} was sent`));
    }
    this.counters.acks++;
    if (throughSeq <= this.acked) return;
    this.acked = throughSeq;
    while (this.inflight.length > 0 && this.inflight[0]! <= throughSeq) this.inflight.shift();
    this.options.onAcked(throughSeq);
    this.pump();
  }

  private pump(): void {
    const call = this.call;
    const { window, maxBatchRecords, maxBatchBytes } = this.settings;
    while (call && this.state === ConnectivityState.READY && !this.waitingForDrain && this.inflight.length < window) {
      const records = this.options.journal.readAfter(this.sent, maxBatchRecords, maxBatchBytes);
      if (records.length === 0) return;
      const lastSeq = records[records.length - 1]!.seq;
      if (records[0]!.seq <= this.everSent) {
        this.counters.recordsResent += records.filter((r) => r.seq <= this.everSent).length;
      }
      const writable = call.write({ frame: { $case: 'batch', value: { records } } });
      this.inflight.push(lastSeq);
      this.sent = lastSeq;
      this.everSent = Math.max(this.everSent, lastSeq);
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
  }

  /** Ends the session `call` (if it is still the current one) and schedules the next attempt. */
  private fail(call: Call, err: Error): void {
    if (call !== this.call) return;
    this.endSession();
    this.counters.failures++;
    this.lastError = errorMessage(err);
    if (this.state === ConnectivityState.SHUTDOWN) return;
    this.connectivity.set(ConnectivityState.TRANSIENT_FAILURE, this.lastError);
    this.backoff.schedule(() => {
      if (this.state !== ConnectivityState.SHUTDOWN) this.connect();
    });
  }

  private endSession(): void {
    const call = this.call;
    this.call = undefined;
    this.clearWelcomeTimer();
    this.inflight = [];
    this.sent = this.acked;
    this.waitingForDrain = false;
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
