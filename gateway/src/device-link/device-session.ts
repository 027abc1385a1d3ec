/**
 * One device-SDK device's stream (protos/fleetgate/v1/device.proto), as the gateway sees it:
 *
 *   Hello -> device-handshake.ts (who, room, where its seqs resume) -> Welcome{deviceId, lastDurableSeq, limits}
 *   Telemetry{seq} -> seq-rules.ts: a resend at or below lastDurableSeq (before any new seq) is acked again, not
 *     stored; a new seq (the first anywhere above the durable one, then each +1) -> size, stream -> rate queue
 *     -> pipeline.append (deviceSeq + epoch: resends stored once) -> committed -> Ack{throughSeq} (one per tick)
 *   Command frames down (device-commands.ts), CommandResult frames up to the command center
 *
 * The same journal, limits and refusals as MQTT; each refusal ends the stream with the gRPC status that
 * ../ingress/refusals.ts gives its reason (device-link-errors.ts).
 */
import { status, type ServerDuplexStream } from '@grpc/grpc-js';
import { type Clock, isLabel, type TimerHandle, type Timers } from '@fleetgate/core';
import type { Logger, TokenClaims } from '@fleetgate/common';
import type { DeviceFrame, DeviceHello, GatewayFrame, Telemetry } from '@fleetgate/protos';
import type { CommandCenter } from '../commands/command-center.ts';
import type { DeviceRegistry } from '../commands/device-registry.ts';
import type { DeviceAuthenticator } from '../ingress/device-authenticator.ts';
import { RateQueue, type RateLimit } from '../ingress/rate-queue.ts';
import type { DeviceRecordAppender, RecordAppender } from '../ingress/record-appender.ts';
import type { DeviceLinkRefusal } from '../refusals.ts';
import { isValidStream } from '../ingress/topics.ts';
import { SdkCommandChannel } from './device-commands.ts';
import { handshake, HELLO_TIMEOUT_MS, helloRefusal, welcomeFrame, type HandshakeSession } from './device-handshake.ts';
import { DeviceDisconnectedError, DeviceLinkRefusedError, type DeviceStreamError, JournalFullError } from '../errors.ts';
import { SEQ, SeqRules } from './seq-rules.ts';

export type DeviceCall = ServerDuplexStream<DeviceFrame, GatewayFrame>;

export interface DeviceSessionDeps {
  auth: DeviceAuthenticator;
  pipeline: DeviceRecordAppender;
  commands: { registry: DeviceRegistry; center: CommandCenter };
  maxPayloadBytes: number;
  maxUnacked: number;
  maxConnections: number;
  rateLimit?: RateLimit;
  /** The open sessions by device id (a new one takes over the old). */
  sessions: Map<string, DeviceSession>;
  /** Counts a refusal by reason (and logs it, sampled). */
  refuse: (reason: DeviceLinkRefusal, fields: Record<string, unknown>) => void;
  counters: { messages: number; bytes: number; resent: number; tokenExpired: number; takenOver: number };
  logger: Logger;
  clock: Clock;
  timers: Timers;
}

export class DeviceSession implements HandshakeSession {
  deviceId: string | undefined;
  claims: TokenClaims | undefined;
  private epoch = '';
  /** A Hello came: another one is refused, even before the Welcome (the device id is known only then). */
  private helloSeen = false;
  private readonly seqs = new SeqRules();
  private ackedThrough = 0;
  private ackScheduled = false;
  private pending = 0;
  private rateWaiting = 0;
  private closed = false;
  /** Until the Hello: its deadline; then until the token expires. */
  private timer: TimerHandle | undefined;
  private readonly rate: RateQueue | undefined;
  private channel: SdkCommandChannel | undefined;

  constructor(
    private readonly call: DeviceCall,
    private readonly deps: DeviceSessionDeps,
  ) {
    this.rate = deps.rateLimit ? new RateQueue(deps.rateLimit, deps.clock, deps.timers) : undefined;
    call.on('data', (frame: DeviceFrame) => this.onFrame(frame));
    call.on('error', () => this.cleanup());
    call.on('cancelled', () => this.cleanup());
    call.on('end', () => this.end());
    this.timer = deps.timers.setTimeout(
      () => this.refuse(new DeviceLinkRefusedError('protocol', `no Hello within ${HELLO_TIMEOUT_MS} ms`)),
      HELLO_TIMEOUT_MS,
    );
  }

  get ended(): boolean {
    return this.closed;
  }

  /** Ends the stream: with the error's status, or cleanly (OK) without one. */
  end(reason?: DeviceStreamError): void {
    if (this.closed) return;
    this.cleanup();
    if (reason === undefined) this.call.end();
    else this.call.emit('error', reason);
  }

  identified(deviceId: string, claims: TokenClaims | undefined, epoch: string): void {
    this.deviceId = deviceId;
    this.claims = claims;
    this.epoch = epoch;
  }

  private refuse(refusal: DeviceLinkRefusedError): void {
    this.deps.refuse(refusal.reason, { deviceId: this.deviceId, detail: refusal.details });
    this.end(refusal);
  }

  private onFrame({ frame }: DeviceFrame): void {
    if (this.closed) return;
    if (frame?.$case === 'hello') return void this.onHello(frame.value);
    if (this.deviceId === undefined || this.channel === undefined) {
      return this.refuse(
        new DeviceLinkRefusedError('protocol', 'the first frame must be Hello, and wait for Welcome', {
          code: status.FAILED_PRECONDITION,
        }),
      );
    }
    switch (frame?.$case) {
      case 'telemetry':
        for (const message of frame.value.messages) {
          if (this.closed) return;
          this.onTelemetry(message);
        }
        return;
      case 'commandResult':
        this.deps.commands.center.fromDevice(this.deviceId, frame.value);
        return;
      default:
        return this.refuse(new DeviceLinkRefusedError('protocol', 'empty or unknown device frame'));
    }
  }

  private async onHello(hello: DeviceHello): Promise<void> {
    const invalid = helloRefusal(hello, this.helloSeen);
    if (invalid) return this.refuse(invalid);
    this.helloSeen = true;
    this.deps.timers.clearTimeout(this.timer!);
    this.timer = undefined;
    const outcome = await handshake(this, hello, this.call.metadata, this.deps);
    if (outcome === undefined) return;
    if (outcome instanceof DeviceLinkRefusedError) return this.refuse(outcome);
    this.welcome(this.deviceId!, outcome);
  }

  private welcome(deviceId: string, lastDurableSeq: number): void {
    this.seqs.resume(lastDurableSeq);
    this.ackedThrough = lastDurableSeq;
    if (this.claims) {
      const wait = Math.min(Math.max(0, this.claims.exp * 1000 - this.deps.clock.now()), 2 ** 31 - 1);
      this.timer = this.deps.timers.setTimeout(() => {
        this.deps.counters.tokenExpired++;
        this.end(new DeviceDisconnectedError('token-expired'));
      }, wait);
      this.timer.unref?.();
    }
    const limits = { maxPayloadBytes: this.deps.maxPayloadBytes, maxUnackedMessages: this.deps.maxUnacked };
    this.call.write(welcomeFrame(deviceId, lastDurableSeq, limits));
    this.channel = new SdkCommandChannel(this, this.call, this.deps.commands.center);
    this.deps.commands.registry.connected(deviceId, this.channel);
  }

  private onTelemetry(t: Telemetry): void {
    const check = this.seqs.check(t.seq);
    if (check === SEQ.RESENT) return this.resent();
    if (check !== SEQ.NEW && check !== SEQ.NEW_AFTER_UNSEEN) return this.refuse(this.seqs.refusal(t.seq, check));
    if (t.payload.length > this.deps.maxPayloadBytes) {
      return this.refuse(
        new DeviceLinkRefusedError(
          'payload-too-large',
          `seq ${t.seq}: a payload of ${t.payload.length} bytes, over the limit of ${this.deps.maxPayloadBytes}`,
        ),
      );
    }
    if (!isValidStream(t.stream) || !isLabel(t.contentType)) {
      return this.refuse(
        new DeviceLinkRefusedError(
          'invalid-stream',
          `seq ${t.seq}: stream or contentType is not up to 128 printable characters (no empty stream levels)`,
        ),
      );
    }
    if (check === SEQ.NEW_AFTER_UNSEEN) {
      // Its predecessors went to another gateway, or to a journal that lost them: nothing the device can resend.
      this.deps.logger.info(
        { deviceId: this.deviceId, epoch: this.epoch, ...this.seqs.unseenBefore(t.seq) },
        'device seqs this gateway never saw',
      );
    }
    this.seqs.take(t.seq);
    this.deps.counters.messages++;
    this.deps.counters.bytes += t.payload.length;
    const record = {
      deviceId: this.deviceId!,
      stream: t.stream,
      payload: t.payload,
      contentType: t.contentType,
      deviceSeq: t.seq,
      deviceEpoch: this.epoch,
      deviceTimeMs: t.timeMs,
      gatewayTimeMs: this.deps.clock.now(),
    };
    this.pending++;
    if (this.pending > this.deps.maxUnacked) this.call.pause();
    if (!this.rate) return this.append(record, t.seq);
    this.rateWaiting++;
    if (this.rate.submit(() => (this.rateWaiting--, this.append(record, t.seq)))) this.call.pause();
  }

  private append(record: Parameters<RecordAppender['append']>[0], seq: number): void {
    if (this.rateWaiting === 0 && this.pending <= this.deps.maxUnacked) this.call.resume();
    this.deps.pipeline.append(record, (err) => {
      this.pending--;
      if (this.pending <= this.deps.maxUnacked && this.rateWaiting === 0) this.call.resume();
      // The device keeps what was not acked and sends it again after its backoff.
      if (err instanceof JournalFullError)
        return this.refuse(new DeviceLinkRefusedError('journal-full', `journal full: ${err.message}`, { cause: err }));
      if (err)
        return this.refuse(
          new DeviceLinkRefusedError('journal-unavailable', `journal unavailable: ${err.message}`, { cause: err }),
        );
      if (seq > this.ackedThrough) this.ackedThrough = seq;
      this.scheduleAck();
    });
  }

  /** A message resent at or below the last durable seq: it is in the journal already; the device hears so again. */
  private resent(): void {
    this.deps.counters.resent++;
    this.scheduleAck();
  }

  private scheduleAck(): void {
    if (!this.ackScheduled) {
      this.ackScheduled = true;
      setImmediate(this.sendAck);
    }
  }

  private readonly sendAck = (): void => {
    this.ackScheduled = false;
    if (!this.closed) this.call.write({ frame: { $case: 'ack', value: { throughSeq: this.ackedThrough } } });
  };

  private cleanup(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== undefined) this.deps.timers.clearTimeout(this.timer);
    this.rate?.close();
    if (this.deviceId !== undefined && this.deps.sessions.get(this.deviceId) === this) this.deps.sessions.delete(this.deviceId);
    if (this.deviceId !== undefined && this.channel) this.deps.commands.registry.disconnected(this.deviceId, this.channel);
  }
}
