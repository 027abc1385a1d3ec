/**
 * The device side of the device link (protos/fleetgate/v1/device.proto), as a line of steps:
 *
 *   send() -> outbox (seq assigned; flushed once per tick) -> Telemetry frames while the window allows (pump)
 *   gateway Ack{throughSeq} -> the outbox forgets those, their send() promises resolve (send-waiters.ts)
 *   gateway Command -> its handler (command-runner.ts) -> CommandResult
 *
 * The connection is retried forever (exponential backoff, full jitter) on the channel link-channel.ts opens;
 * every attempt asks the token provider again, so an expired or refused token is replaced. After each Welcome the
 * client resends what the gateway has not committed; the gateway stores each (device, epoch, seq) once. State
 * changes are events (connectivity.waitFor(READY)).
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { Metadata, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { Backoff, ConnectivityState, ConnectivityTracker, errorMessage, systemTimers, type TimerHandle } from '@fleetgate/core';
import type { Command, DeviceFrame, DeviceWelcome, GatewayFrame } from '@fleetgate/protos';
import type { ClientStats, ConnectOptions, SendOptions, SendResult } from './client-options.ts';
import { CommandRunner, type CommandHandler } from './command-runner.ts';
import { ClientClosedError, OutboxFlushError, PayloadTooLargeError } from './errors.ts';
import { openLinkChannel, type LinkClient } from './link-channel.ts';
import { openOutbox } from './outbox/open-outbox.ts';
import { SqliteOutbox } from './outbox/outbox-sqlite.ts';
import type { Outbox } from './outbox/outbox.ts';
import { encodePayload } from './payload.ts';
import { SendWaiters } from './send-waiters.ts';

/** This SDK's version, from its package.json (sent to the gateway in the device Hello). */
export const SDK_VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

type Call = ClientDuplexStream<DeviceFrame, GatewayFrame>;

/** Before the first Welcome says the gateway's limit, its default. */
const DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024;
/** Messages per Telemetry frame, at most: what is ready goes together. */
const MAX_FRAME_MESSAGES = 256;

export class DeviceClient extends EventEmitter<{ error: [Error] }> {
  readonly connectivity = new ConnectivityTracker();
  private readonly outbox: Outbox;
  private readonly client: LinkClient;
  private readonly backoff: Backoff;
  private readonly waiters = new SendWaiters();
  private readonly commands = new CommandRunner();
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
    this.client = openLinkChannel(options);
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
    const { bytes, contentType } = encodePayload(payload, options.contentType);
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
    const promise = this.waiters.wait(seq);
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
    this.commands.on(name, handler);
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
      this.waiters.rejectAll(
        () =>
          new ClientClosedError(
            `closed with ${left} messages uncommitted: ${durable ? 'they stay in the durable outbox and go at the next start' : 'lost with the memory outbox'}`,
          ),
      );
    })();
    return this.closing;
  }

  private readonly flushAndPump = (): void => {
    this.flushScheduled = false;
    try {
      this.outbox.flush();
    } catch (err: unknown) {
      // The disk refused: keep the messages queued (in order) and try again shortly.
      this.emit('error', new OutboxFlushError(`outbox flush failed: ${errorMessage(err)}`, { cause: err }));
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
    this.waiters.resolveThrough(throughSeq);
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

  private onCommandFrame(call: Call, command: Command): Promise<void> {
    this.counters.commands++;
    return this.commands.run(command, (result) => {
      if (call === this.call) call.write({ frame: { $case: 'commandResult', value: result } });
    });
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
