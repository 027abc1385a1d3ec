/**
 * One device-SDK device's stream (protos/fleetgate/v1/device.proto), as the gateway sees it:
 *
 *   Hello{epoch, deviceId} -> identify (token in metadata) -> Welcome{deviceId, lastDurableSeq, limits}
 *   Telemetry{seq <= lastDurableSeq} (a resend, before any new seq) -> Ack{lastDurableSeq} again, not stored
 *   Telemetry{seq} -> checks (the first new seq anywhere above the durable one, then each +1) -> rate queue
 *     -> pipeline.append (deviceSeq + epoch: resends stored once) -> committed -> Ack{throughSeq} (coalesced: one per tick)
 *   Command frames down (CommandCenter), CommandResult frames up
 *
 * The same journal, limits and refusals as MQTT, as gRPC statuses: UNAUTHENTICATED / PERMISSION_DENIED (who),
 * INVALID_ARGUMENT (what: oversize payload, bad stream, seq not increasing or skipped), RESOURCE_EXHAUSTED (too many
 * devices), UNAVAILABLE (the journal failed), ABORTED (the same device connected again).
 */
import { status, type ServerDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { type Clock, errorMessage, isLabel, type TimerHandle, type Timers } from '@fleetgate/core';
import type { Logger, TokenClaims } from '@fleetgate/common';
import type { Command, DeviceFrame, DeviceHello, GatewayFrame, Telemetry } from '@fleetgate/protos';
import type { CommandCenter } from '../commands/command-center.ts';
import type { StoredCommand } from '../commands/command-store.ts';
import type { DeviceChannel, DeviceRegistry } from '../commands/device-registry.ts';
import type { DeviceAuthenticator } from '../ingress/device-authenticator.ts';
import { RateQueue, type RateLimit } from '../ingress/rate-queue.ts';
import type { DeviceRecordAppender, RecordAppender } from '../ingress/record-appender.ts';
import { grpcStatus, type DeviceLinkRefusal } from '../ingress/refusals.ts';
import { isValidStream } from '../ingress/topics.ts';
import { JournalFullError } from '../journal/journal.ts';

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

const HELLO_TIMEOUT_MS = 10_000;

export class DeviceSession {
  deviceId: string | undefined;
  claims: TokenClaims | undefined;
  private epoch = '';
  /** Welcome's lastDurableSeq: seqs at or below it are resends. */
  private durableSeq = 0;
  /** The last new seq taken on this stream (durableSeq until one is). */
  private lastSeq = 0;
  /** A seq above durableSeq was taken: from now on each seq is lastSeq + 1. */
  private takingNew = false;
  private ackedThrough = 0;
  private ackScheduled = false;
  private pending = 0;
  private rateWaiting = 0;
  private ended = false;
  private timer: TimerHandle | undefined;
  private readonly rate: RateQueue | undefined;
  private channel: DeviceChannel | undefined;

  constructor(
    private readonly call: DeviceCall,
    private readonly deps: DeviceSessionDeps,
  ) {
    this.rate = deps.rateLimit ? new RateQueue(deps.rateLimit, deps.clock, deps.timers) : undefined;
    call.on('data', (frame: DeviceFrame) => this.onFrame(frame));
    call.on('error', () => this.cleanup());
    call.on('cancelled', () => this.cleanup());
    call.on('end', () => this.end(status.OK, 'the device closed its side'));
    this.timer = deps.timers.setTimeout(
      () => this.refuse('protocol', status.INVALID_ARGUMENT, `no Hello within ${HELLO_TIMEOUT_MS} ms`),
      HELLO_TIMEOUT_MS,
    );
  }

  /** Ends the stream with a status (OK: cleanly). */
  end(code: status, details: string): void {
    if (this.ended) return;
    this.cleanup();
    if (code === status.OK) this.call.end();
    else this.call.emit('error', Object.assign(new Error(details), { code, details }) as Partial<ServiceError>);
  }

  private refuse(reason: DeviceLinkRefusal, code: status, details: string): void {
    this.deps.refuse(reason, { deviceId: this.deviceId, detail: details });
    this.end(code, details);
  }

  private onFrame({ frame }: DeviceFrame): void {
    if (this.ended) return;
    if (frame?.$case === 'hello') return void this.onHello(frame.value);
    if (this.deviceId === undefined || this.channel === undefined)
      return this.refuse('protocol', status.FAILED_PRECONDITION, 'the first frame must be Hello, and wait for Welcome');
    switch (frame?.$case) {
      case 'telemetry':
        for (const message of frame.value.messages) {
          if (this.ended) return;
          this.onTelemetry(message);
        }
        return;
      case 'commandResult':
        this.deps.commands.center.fromDevice(this.deviceId, frame.value);
        return;
      default:
        return this.refuse('protocol', status.INVALID_ARGUMENT, 'empty or unknown device frame');
    }
  }

  private async onHello(hello: DeviceHello): Promise<void> {
    if (this.deviceId !== undefined) return this.refuse('protocol', status.INVALID_ARGUMENT, 'Hello sent twice');
    if (!/^[A-Za-z0-9-]{1,64}$/.test(hello.epoch))
      return this.refuse('protocol', status.INVALID_ARGUMENT, 'Hello.epoch must be 1-64 of [A-Za-z0-9-]');
    this.deps.timers.clearTimeout(this.timer!);
    this.timer = undefined;
    const header = this.call.metadata.get('authorization')[0];
    const token = typeof header === 'string' ? /^Bearer\s+(\S+)$/i.exec(header)?.[1] : undefined;
    const result = await this.deps.auth.identify(hello.deviceId, token);
    if (this.ended) return;
    if (!result.ok) return this.refuse(result.reason, grpcStatus(result.reason), result.message);
    const deviceId = result.deviceId;
    const previous = this.deps.sessions.get(deviceId);
    if (!previous && this.deps.sessions.size >= this.deps.maxConnections) {
      return this.refuse('too-many-connections', status.RESOURCE_EXHAUSTED, `${this.deps.maxConnections} devices connected`);
    }
    this.deviceId = deviceId;
    this.claims = result.claims;
    this.epoch = hello.epoch;
    if (previous) {
      this.deps.counters.takenOver++;
      previous.end(status.ABORTED, 'the same device connected again');
    }
    this.deps.sessions.set(deviceId, this);
    let lastDurableSeq: number;
    try {
      lastDurableSeq = await this.deps.pipeline.lastDeviceSeq(deviceId, hello.epoch);
    } catch (err: unknown) {
      return this.refuse('journal-unavailable', status.UNAVAILABLE, `journal unavailable: ${errorMessage(err)}`);
    }
    if (this.ended) return;
    this.durableSeq = this.lastSeq = this.ackedThrough = lastDurableSeq;
    if (result.claims) {
      const wait = Math.min(Math.max(0, result.claims.exp * 1000 - this.deps.clock.now()), 2 ** 31 - 1);
      this.timer = this.deps.timers.setTimeout(() => {
        this.deps.counters.tokenExpired++;
        this.end(status.UNAUTHENTICATED, 'device token expired: reconnect with a fresh one');
      }, wait);
      this.timer.unref?.();
    }
    this.call.write({
      frame: {
        $case: 'welcome',
        value: {
          deviceId,
          lastDurableSeq,
          limits: { maxPayloadBytes: this.deps.maxPayloadBytes, maxUnackedMessages: this.deps.maxUnacked },
        },
      },
    });
    this.channel = { protocol: 'sdk', deliver: (command) => this.deliver(command) };
    this.deps.commands.registry.connected(deviceId, this.channel);
  }

  private onTelemetry(t: Telemetry): void {
    // device.proto: resends of durable seqs first (acked again, not stored), then new seqs, each the last + 1.
    if (t.seq < 1) return this.refuse('seq-not-increasing', status.INVALID_ARGUMENT, 'seq 0: seqs start at 1');
    if (!this.takingNew && t.seq <= this.durableSeq) return this.resent();
    const expected = this.lastSeq + 1;
    if (t.seq < expected) {
      return this.refuse(
        'seq-not-increasing',
        status.INVALID_ARGUMENT,
        `seq ${t.seq} after ${this.lastSeq}: expected ${expected}; seqs must increase along a stream (resends of seqs up to ${this.durableSeq}, the last durable one, may come only before new ones)`,
      );
    }
    if (t.seq > expected && this.takingNew) {
      return this.refuse(
        'seq-skipped',
        status.INVALID_ARGUMENT,
        `seq ${t.seq} after ${this.lastSeq}: expected ${expected}; seqs are never skipped`,
      );
    }
    if (t.payload.length > this.deps.maxPayloadBytes) {
      return this.refuse(
        'payload-too-large',
        status.INVALID_ARGUMENT,
        `seq ${t.seq}: a payload of ${t.payload.length} bytes, over the limit of ${this.deps.maxPayloadBytes}`,
      );
    }
    if (!isValidStream(t.stream) || !isLabel(t.contentType)) {
      return this.refuse(
        'invalid-stream',
        status.INVALID_ARGUMENT,
        `seq ${t.seq}: stream or contentType is not up to 128 printable characters (no empty stream levels)`,
      );
    }
    if (!this.takingNew && t.seq > expected) {
      // Its predecessors went to another gateway, or to a journal that lost them: nothing the device can resend.
      this.deps.logger.info(
        { deviceId: this.deviceId, epoch: this.epoch, from: expected, to: t.seq - 1 },
        'device seqs this gateway never saw',
      );
    }
    this.takingNew = true;
    this.lastSeq = t.seq;
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
        return this.refuse('journal-full', status.RESOURCE_EXHAUSTED, `journal full: ${err.message}`);
      if (err) return this.refuse('journal-unavailable', status.UNAVAILABLE, `journal unavailable: ${err.message}`);
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
    if (!this.ended) this.call.write({ frame: { $case: 'ack', value: { throughSeq: this.ackedThrough } } });
  };

  private deliver(command: StoredCommand): void {
    if (this.ended) return;
    const frame: Command = {
      commandId: command.commandId,
      deviceId: command.deviceId,
      name: command.name,
      payload: command.payload,
      expiresAtMs: command.expiresAtMs,
    };
    this.call.write({ frame: { $case: 'command', value: frame } });
    this.deps.commands.center.delivered(command.commandId);
  }

  private cleanup(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.timer !== undefined) this.deps.timers.clearTimeout(this.timer);
    this.rate?.close();
    if (this.deviceId !== undefined && this.deps.sessions.get(this.deviceId) === this) this.deps.sessions.delete(this.deviceId);
    if (this.deviceId !== undefined && this.channel) this.deps.commands.registry.disconnected(this.deviceId, this.channel);
  }
}
