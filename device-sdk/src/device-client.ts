/**
 * The device side of the device link (protos/fleetgate/v1/device.proto):
 *
 *   send() -> outbox (seq assigned; flushed once per tick) -> Telemetry frames while the window allows
 *   gateway Ack{throughSeq} -> the outbox forgets those, their send() promises resolve
 *
 * The connection is retried forever (exponential backoff, full jitter); every attempt asks the token provider
 * again, so an expired or refused token is replaced. After each Welcome the client resends what the gateway
 * has not committed; the gateway stores each (device, epoch, seq) once. State changes are events
 * (connectivity.waitFor(READY)). Commands run their handler; its value or its error is the result.
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { credentials, Metadata, type ChannelCredentials, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { Backoff, ConnectivityState, ConnectivityTracker, errorMessage, systemTimers, type TimerHandle } from '@fleetgate/core';
import {
  CommandStatus,
  DeviceLinkClient,
  type Command,
  type CommandResult,
  type DeviceFrame,
  type DeviceWelcome,
  type GatewayFrame,
} from '@fleetgate/protos';
import { ClientClosedError, PayloadTooLargeError } from './errors.ts';
import { MemoryOutbox } from './outbox/outbox-memory.ts';
import { SqliteOutbox, type SqliteOutboxOptions } from './outbox/outbox-sqlite.ts';
import { DEFAULT_OUTBOX_LIMITS, type Outbox, type OutboxLimits } from './outbox/outbox.ts';

/** This SDK's version, from its package.json (sent to the gateway in the device Hello). */
export const SDK_VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

export interface TlsOptions {
  /** CA the gateway's certificate must chain to (PEM); the system's CAs if absent. */
  ca?: string | Buffer;
  /** A client certificate and key (PEM), for gateways that require mTLS. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** The name the gateway's certificate must carry, if not the host of `url`. */
  serverName?: string;
}

export type OutboxOption = ({ type?: 'memory' } & Partial<OutboxLimits>) | ({ type: 'sqlite' } & SqliteOutboxOptions) | Outbox;

export interface ConnectOptions {
  /** The gateway's device link: "host:port", "grpc://host:port", or "grpcs://host:port" (TLS). */
  url: string;
  /** The device token; or getToken, asked again at every connection (rotate tokens there). */
  token?: string;
  getToken?: () => string | Promise<string>;
  /** Only for a gateway that accepts anonymous devices: the id to use. */
  deviceId?: string;
  /** TLS to the gateway; implied by grpcs://. */
  tls?: boolean | TlsOptions;
  /** Where messages wait until the gateway commits them: memory (default) or a durable SQLite file. */
  outbox?: OutboxOption;
  /** Messages sent and not yet acked, at most. */
  window?: number;
  reconnect?: { initialMs?: number; maxMs?: number };
  /** A connection that gets no Welcome in this time is given up and retried. */
  welcomeTimeoutMs?: number;
}

export interface SendOptions {
  /** "" (default) or a stream name, e.g. "vibration". */
  stream?: string;
  contentType?: string;
  /** When the device measured, ms since the epoch (default: now). */
  timeMs?: number;
}

export interface SendResult {
  /** The message's seq within this device's epoch. */
  seq: number;
}

export interface CommandRequest {
  commandId: string;
  name: string;
  payload: Buffer;
  expiresAt: Date;
  /** The payload parsed as JSON. */
  json<T = unknown>(): T;
}

/** Returns the result (a Buffer, a string, or anything JSON); throws to fail the command with its message. */
export type CommandHandler = (command: CommandRequest) => unknown;

export interface ClientStats {
  state: ConnectivityState;
  deviceId: string | undefined;
  epoch: string;
  /** Messages in the outbox: taken and not committed by the gateway. */
  queued: number;
  /** Highest seq the gateway acked. */
  ackedThrough: number;
  sessions: number;
  commands: number;
  lastError: string | null;
}

type Call = ClientDuplexStream<DeviceFrame, GatewayFrame>;
type Waiter = { resolve: (result: SendResult) => void; reject: (err: Error) => void };

/** Before the first Welcome says the gateway's limit, its default. */
const DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024;
const HANDLED_COMMANDS_REMEMBERED = 1000;
/** Messages per Telemetry frame, at most: what is ready goes together. */
const MAX_FRAME_MESSAGES = 256;

export class DeviceClient extends EventEmitter<{ error: [Error] }> {
  readonly connectivity = new ConnectivityTracker();
  private readonly outbox: Outbox;
  private readonly client: InstanceType<typeof DeviceLinkClient>;
  private readonly backoff: Backoff;
  private readonly waiters = new Map<number, Waiter>();
  private readonly handlers = new Map<string, CommandHandler>();
  /** Results of commands already run: a command delivered again gets the same answer, not a second run. */
  private readonly handled = new Map<string, CommandResult>();
  private call: Call | undefined;
  private welcomeTimer: TimerHandle | undefined;
  private flushScheduled = false;
  private waitingForDrain = false;
  private sent = 0;
  private acked = 0;
  private maxPayloadBytes = DEFAULT_MAX_PAYLOAD_BYTES;
  private closing: Promise<void> | undefined;
  private counters = { sessions: 0, commands: 0 };
  private lastError: string | null = null;
  private attempts = 0;
  deviceId: string | undefined;

  constructor(private readonly options: ConnectOptions) {
    super();
    this.outbox = openOutbox(options.outbox);
    const { target, secure } = parseUrl(options.url);
    this.client = new DeviceLinkClient(target, channelCredentials(secure || Boolean(options.tls), options.tls), {
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 5_000,
      ...(typeof options.tls === 'object' && options.tls.serverName
        ? { 'grpc.ssl_target_name_override': options.tls.serverName, 'grpc.default_authority': options.tls.serverName }
        : {}),
    });
    const maxMs = options.reconnect?.maxMs ?? 10_000;
    this.backoff = new Backoff({ initialMs: Math.min(options.reconnect?.initialMs ?? 100, maxMs), maxMs, multiplier: 2 });
    this.acked = this.sent = 0;
    void this.connect();
  }

  get state(): ConnectivityState {
    return this.connectivity.state;
  }

  private get isShutDown(): boolean {
    return this.state === ConnectivityState.SHUTDOWN;
  }

  get epoch(): string {
    return this.outbox.epoch;
  }

  /**
   * Takes a message and resolves once the gateway has committed it. Rejects at once, taking nothing, if the
   * client is closed, the payload is over the gateway's limit, or the outbox is full; never drops silently.
   */
  send(payload: Uint8Array | string | object, options: SendOptions = {}): Promise<SendResult> {
    if (this.closing) return Promise.reject(new ClientClosedError('the client is closed'));
    const { bytes, contentType } = encode(payload, options.contentType);
    if (bytes.length > this.maxPayloadBytes) {
      return Promise.reject(
        new PayloadTooLargeError(`a payload of ${bytes.length} bytes is over the gateway's limit of ${this.maxPayloadBytes}`),
      );
    }
    let entry;
    try {
      entry = this.outbox.add({
        stream: options.stream ?? '',
        contentType,
        timeMs: options.timeMs ?? Date.now(),
        payload: bytes,
      });
    } catch (err: unknown) {
      return Promise.reject(err);
    }
    const seq = entry.seq;
    const promise = new Promise<SendResult>((resolve, reject) => this.waiters.set(seq, { resolve, reject }));
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushAndPump);
    }
    return promise;
  }

  /**
   * Makes every message taken so far durable in the outbox. It happens by itself at the end of each tick;
   * await this to know when (e.g. before telling someone the data is safe on the device).
   */
  flush(): void {
    this.outbox.flush();
  }

  /**
   * Drops the current session and connects again at once, as after a change of network: what the gateway has
   * not acked is sent again, and the gateway stores it once.
   */
  reconnect(): void {
    if (this.isShutDown || this.closing) return;
    this.backoff.cancel();
    this.endSession();
    void this.connect();
  }

  /** Runs `handler` for commands named `name`. Commands without a handler are answered REJECTED. */
  onCommand(name: string, handler: CommandHandler): this {
    this.handlers.set(name, handler);
    return this;
  }

  stats(): ClientStats {
    return {
      state: this.state,
      deviceId: this.deviceId,
      epoch: this.outbox.epoch,
      queued: this.outbox.size,
      ackedThrough: this.acked,
      ...this.counters,
      lastError: this.lastError,
    };
  }

  /**
   * Stops taking messages, waits (up to drainTimeoutMs) for the gateway to commit what is queued, and closes.
   * What is still queued then rejects: a durable outbox keeps it for the next start, a memory one loses it.
   */
  close({ drainTimeoutMs = 10_000 }: { drainTimeoutMs?: number } = {}): Promise<void> {
    this.closing ??= (async () => {
      this.flushAndPump();
      const deadline = Date.now() + drainTimeoutMs;
      while (this.outbox.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      this.connectivity.set(ConnectivityState.SHUTDOWN);
      this.backoff.cancel();
      this.endSession();
      this.client.close();
      const left = this.outbox.size;
      const durable = this.outbox instanceof SqliteOutbox;
      this.outbox.close();
      for (const waiter of this.waiters.values()) {
        waiter.reject(
          new ClientClosedError(
            `closed with ${left} messages uncommitted: ${durable ? 'they stay in the durable outbox and go at the next start' : 'lost with the memory outbox'}`,
          ),
        );
      }
      this.waiters.clear();
    })();
    return this.closing;
  }

  private readonly flushAndPump = (): void => {
    this.flushScheduled = false;
    try {
      this.outbox.flush();
    } catch (err: unknown) {
      // The disk refused: keep the messages queued (in order) and try again shortly.
      this.emit('error', new Error(`outbox flush failed: ${errorMessage(err)}`));
      setTimeout(this.flushAndPump, 100).unref();
      return;
    }
    this.pump();
  };

  private async connect(): Promise<void> {
    if (this.state === ConnectivityState.SHUTDOWN) return;
    this.connectivity.set(ConnectivityState.CONNECTING);
    this.counters.sessions++;
    const attempt = ++this.attempts;
    const metadata = new Metadata();
    try {
      const token = this.options.getToken ? await this.options.getToken() : this.options.token;
      if (token) metadata.set('authorization', `Bearer ${token}`);
    } catch (err: unknown) {
      return this.retry(`the token provider failed: ${errorMessage(err)}`);
    }
    if (this.isShutDown) return; // closed while the token provider was asked
    if (attempt !== this.attempts) return; // reconnect() started another attempt meanwhile
    const call = this.client.connect(metadata);
    this.call = call;
    call.on('data', (frame: GatewayFrame) => this.onFrame(call, frame));
    call.on('error', (err: ServiceError) => this.fail(call, err.message));
    call.on('end', () => this.fail(call, 'the gateway ended the stream'));
    const timeout = this.options.welcomeTimeoutMs ?? 10_000;
    this.welcomeTimer = systemTimers.setTimeout(() => this.fail(call, `no Welcome within ${timeout} ms`), timeout);
    this.welcomeTimer.unref?.();
    call.write({
      frame: {
        $case: 'hello',
        value: { epoch: this.outbox.epoch, deviceId: this.options.deviceId ?? '', sdkVersion: SDK_VERSION },
      },
    });
  }

  private onFrame(call: Call, { frame }: GatewayFrame): void {
    if (call !== this.call) return;
    switch (frame?.$case) {
      case 'welcome':
        return this.onWelcome(frame.value);
      case 'ack':
        return this.onAck(frame.value.throughSeq);
      case 'command':
        return void this.onCommandFrame(call, frame.value);
      default:
        return;
    }
  }

  private onWelcome(welcome: DeviceWelcome): void {
    if (this.welcomeTimer !== undefined) systemTimers.clearTimeout(this.welcomeTimer);
    this.welcomeTimer = undefined;
    this.deviceId = welcome.deviceId;
    if (welcome.limits?.maxPayloadBytes) this.maxPayloadBytes = welcome.limits.maxPayloadBytes;
    this.onAck(welcome.lastDurableSeq);
    this.sent = Math.max(this.acked, welcome.lastDurableSeq);
    this.waitingForDrain = false;
    this.backoff.reset();
    this.connectivity.set(ConnectivityState.READY);
    this.pump();
  }

  private onAck(throughSeq: number): void {
    if (throughSeq <= this.acked) return;
    this.acked = throughSeq;
    this.outbox.ackThrough(throughSeq);
    for (const [seq, waiter] of this.waiters) {
      if (seq > throughSeq) break;
      this.waiters.delete(seq);
      waiter.resolve({ seq });
    }
    this.pump();
  }

  private pump(): void {
    const call = this.call;
    const window = this.options.window ?? 500;
    while (call && this.state === ConnectivityState.READY && !this.waitingForDrain && this.sent - this.acked < window) {
      const entries = this.outbox.after(this.sent, Math.min(MAX_FRAME_MESSAGES, window - (this.sent - this.acked)));
      if (entries.length === 0) return;
      const messages = entries.map((e) => ({
        seq: e.seq,
        stream: e.stream,
        timeMs: e.timeMs,
        payload: e.payload,
        contentType: e.contentType,
      }));
      const writable = call.write({ frame: { $case: 'telemetry', value: { messages } } });
      this.sent = entries[entries.length - 1]!.seq;
      if (!writable) {
        this.waitingForDrain = true;
        call.once('drain', () => {
          if (call !== this.call) return;
          this.waitingForDrain = false;
          this.pump();
        });
        return;
      }
    }
  }

  private async onCommandFrame(call: Call, command: Command): Promise<void> {
    this.counters.commands++;
    const reply = (result: CommandResult) => {
      this.handled.set(command.commandId, result);
      if (this.handled.size > HANDLED_COMMANDS_REMEMBERED) this.handled.delete(this.handled.keys().next().value!);
      if (call === this.call) call.write({ frame: { $case: 'commandResult', value: result } });
    };
    const base = { commandId: command.commandId, deviceId: command.deviceId, payload: Buffer.alloc(0), message: '' };
    const earlier = this.handled.get(command.commandId);
    if (earlier) return reply(earlier);
    const handler = this.handlers.get(command.name);
    if (!handler)
      return reply({
        ...base,
        status: CommandStatus.COMMAND_STATUS_REJECTED,
        message: `no handler for command "${command.name}"`,
      });
    if (command.expiresAtMs > 0 && command.expiresAtMs <= Date.now()) {
      return reply({ ...base, status: CommandStatus.COMMAND_STATUS_EXPIRED, message: 'expired before it could run' });
    }
    const request: CommandRequest = {
      commandId: command.commandId,
      name: command.name,
      payload: command.payload,
      expiresAt: new Date(command.expiresAtMs),
      json: <T>() => JSON.parse(command.payload.toString('utf8')) as T,
    };
    try {
      const value = await handler(request);
      reply({
        ...base,
        status: CommandStatus.COMMAND_STATUS_SUCCEEDED,
        payload: value === undefined ? Buffer.alloc(0) : encode(value).bytes,
      });
    } catch (err: unknown) {
      reply({ ...base, status: CommandStatus.COMMAND_STATUS_FAILED, message: errorMessage(err) });
    }
  }

  private fail(call: Call, reason: string): void {
    if (call !== this.call) return;
    this.endSession();
    this.retry(reason);
  }

  private retry(reason: string): void {
    this.lastError = reason;
    if (this.state === ConnectivityState.SHUTDOWN) return;
    this.connectivity.set(ConnectivityState.TRANSIENT_FAILURE, reason);
    this.backoff.schedule(() => void this.connect());
  }

  private endSession(): void {
    const call = this.call;
    this.call = undefined;
    if (this.welcomeTimer !== undefined) systemTimers.clearTimeout(this.welcomeTimer);
    this.welcomeTimer = undefined;
    this.sent = this.acked;
    this.waitingForDrain = false;
    if (call) {
      call.removeAllListeners();
      call.on('error', () => {});
      call.cancel();
    }
  }
}

function openOutbox(option: OutboxOption | undefined): Outbox {
  if (option && 'add' in option) return option;
  if (option?.type === 'sqlite') return new SqliteOutbox(option);
  return new MemoryOutbox({ ...DEFAULT_OUTBOX_LIMITS, ...option });
}

function parseUrl(url: string): { target: string; secure: boolean } {
  const match = /^(?:(grpcs?):\/\/)?([^/]+)\/?$/.exec(url);
  if (!match) throw new TypeError(`url "${url}" is not host:port, grpc://host:port or grpcs://host:port`);
  return { target: match[2]!, secure: match[1] === 'grpcs' };
}

function channelCredentials(secure: boolean, tls: ConnectOptions['tls']): ChannelCredentials {
  if (!secure) return credentials.createInsecure();
  const o = typeof tls === 'object' ? tls : {};
  const pem = (v: string | Buffer | undefined) => (v === undefined ? null : Buffer.from(v));
  return credentials.createSsl(pem(o.ca), pem(o.key), pem(o.cert));
}

/** Bytes and content type of a payload: bytes as they are, a string as UTF-8, anything else as JSON. */
function encode(payload: unknown, contentType?: string): { bytes: Buffer; contentType: string } {
  if (payload instanceof Uint8Array)
    return { bytes: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), contentType: contentType ?? '' };
  if (typeof payload === 'string') return { bytes: Buffer.from(payload, 'utf8'), contentType: contentType ?? '' };
  return { bytes: Buffer.from(JSON.stringify(payload) ?? 'null', 'utf8'), contentType: contentType ?? 'application/json' };
}
