/**
 * One gateway's uplink stream, as the backend sees it:
 *   Hello -> Welcome{sessionId, limits (maxBatchesInFlight: the first credit), lastCommittedSeq}; then for each
 *   TelemetryBatch: commit its valid records to the sink (deduped), and only then Ack{fromSeq, throughSeq,
 *   rejected} and Credit{1}; for each Gap: record it, then Ack{fromSeq, throughSeq} of its range; for each
 *   Heartbeat: the same Heartbeat back at once (Welcome says answersHeartbeats), held back by nothing, not even
 *   fault injection's held acks: it says this stream handler is alive, whatever the sink is doing.
 * Credit is how the backend paces a replay: a gateway may have only as many batches in flight as it was granted,
 * and a batch sent without credit ends the stream (RESOURCE_EXHAUSTED). A record with invalid fields is not the
 * whole batch's fault: it is listed as rejected in the ack, and the rest is committed.
 * Before any frame is read, the gateway is authenticated (gateway-auth.ts): UNAUTHENTICATED if its token is
 * missing or bad, or when it expires or is revoked during the stream; PERMISSION_DENIED if Hello names another
 * gateway than the token. A protocol violation ends the stream with INVALID_ARGUMENT or FAILED_PRECONDITION and
 * a message saying what was wrong; a sink failure ends it with UNAVAILABLE, so the gateway reconnects and resends.
 */
import { randomUUID } from 'node:crypto';
import { status, type ServerDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { DEVICE_ID_PATTERN, errorMessage, ID_PATTERN, isLabel } from '@fleetgate/core';
import type { Logger, TokenClaims } from '@fleetgate/common';
import type {
  Ack,
  DownlinkFrame,
  Gap,
  Hello,
  Limits,
  RecordRejection,
  TelemetryBatch,
  TelemetryRecord,
  UplinkFrame,
} from '@fleetgate/protos';
import type { CommandRouter, GatewayLink } from './commands/command-router.ts';
import type { CommitQueue } from './commit-queue.ts';
import type { Faults } from './faults.ts';
import type { GatewayAuth } from './gateway-auth.ts';
import type { Sink } from './sink/sink.ts';

export type UplinkCall = ServerDuplexStream<UplinkFrame, DownlinkFrame>;

/** Who holds each gateway's stream: a newer stream from the same gateway replaces the older one. */
export class SessionRegistry {
  private readonly sessions = new Map<string, UplinkSession>();

  claim(session: UplinkSession, gatewayId: string): void {
    const previous = this.sessions.get(gatewayId);
    this.sessions.set(gatewayId, session);
    previous?.end(status.ABORTED, 'superseded by a newer stream from the same gateway');
  }

  release(session: UplinkSession, gatewayId: string): void {
    if (this.sessions.get(gatewayId) === session) this.sessions.delete(gatewayId);
  }

  get size(): number {
    return this.sessions.size;
  }

  /** Ends the sessions whose token is no longer valid; returns how many. */
  endInvalid(stillValid: (claims: TokenClaims) => boolean): number {
    let ended = 0;
    for (const session of this.sessions.values()) {
      if (session.claims && !stillValid(session.claims)) {
        session.end(status.UNAUTHENTICATED, 'gateway token revoked');
        ended++;
      }
    }
    return ended;
  }

  endAll(code: status, details: string): void {
    // end() removes the session from the map: deleting the entry being visited is safe for a Map iterator.
    for (const session of this.sessions.values()) session.end(code, details);
  }
}

export interface SessionDeps {
  sink: Sink;
  queue: CommitQueue;
  registry: SessionRegistry;
  limits: Limits;
  logger: Logger;
  /** Every ack passes through here (fault injection can hold acks, or reject payloads). */
  faults: Faults;
  auth: GatewayAuth;
  /** Takes device statuses and command results; sends commands through this session's link. */
  router: CommandRouter;
}

/** Device ids remembered per stream as checked. */
const MAX_KNOWN_DEVICES = 100_000;
/** The most payload one record may carry here (the gateway's own default limit is 256 KiB). */
const MAX_PAYLOAD_BYTES = 16 << 20;
/** Credit granted when the limits name none. */
const DEFAULT_CREDIT = 16;

export class UplinkSession {
  readonly id = randomUUID();
  private gatewayId: string | undefined;
  private logger: Logger;
  /** Batches and gaps received and not yet acked. */
  private pending = 0;
  /** Batches the gateway may still send. */
  private credit: number;
  private ended = false;
  /** Device ids already checked on this stream: the id check runs once per device, not per record. */
  private readonly knownDevices = new Set<string>();
  private expiry: NodeJS.Timeout | undefined;
  /** The gateway's verified token, when tokens are in use. */
  claims: TokenClaims | undefined;
  /** This session as the command router sees it, once Hello is accepted. */
  private link: GatewayLink | undefined;

  constructor(
    private readonly call: UplinkCall,
    private readonly deps: SessionDeps,
  ) {
    this.logger = deps.logger.child({ session: this.id, peer: call.getPeer() });
    this.credit = deps.limits.maxBatchesInFlight || DEFAULT_CREDIT;
    // Frames are read only once the gateway is authenticated: no 'data' listener until then.
    deps.auth.authenticate(call.metadata).then(
      (result) => {
        if (this.ended) return;
        if (!result.ok) return this.end(result.code, result.message);
        this.claims = result.claims;
        if (result.claims) {
          const wait = Math.min(result.claims.exp * 1000 - Date.now(), 2 ** 31 - 1);
          this.expiry = setTimeout(
            () => this.end(status.UNAUTHENTICATED, 'gateway token expired: reconnect with a fresh one'),
            Math.max(0, wait),
          );
          this.expiry.unref();
        }
        call.on('data', (frame: UplinkFrame) => this.onFrame(frame));
      },
      (err: unknown) => this.end(status.INTERNAL, `authentication failed: ${errorMessage(err)}`),
    );
    call.on('error', () => this.cleanup());
    call.on('cancelled', () => this.cleanup());
    call.on('end', () => {
      // The gateway half-closed: finish the acks in flight, then close our side.
      this.cleanup();
      if (this.pending === 0) call.end();
    });
  }

  /** Ends the stream with a status (OK ends it cleanly). */
  end(code: status, details: string): void {
    if (this.ended) return;
    this.cleanup();
    if (code === status.OK) {
      this.call.end();
    } else {
      const err: Partial<ServiceError> = Object.assign(new Error(details), { code, details });
      this.call.emit('error', err);
    }
    this.logger.info({ gatewayId: this.gatewayId, code: status[code], details }, 'uplink stream ended');
  }

  private onFrame({ frame }: UplinkFrame): void {
    if (this.ended) return;
    switch (frame?.$case) {
      case 'hello':
        return void this.onHello(frame.value);
      case 'batch':
        return this.onBatch(frame.value);
      case 'gap':
        return this.onGap(frame.value);
      case 'heartbeat':
        return this.writeIfOpen({ frame: { $case: 'heartbeat', value: frame.value } });
      case 'deviceStatus':
        return this.link
          ? void this.routerCall(this.deps.router.deviceStatus(this.link, frame.value))
          : this.end(status.FAILED_PRECONDITION, 'the first frame must be Hello');
      case 'commandResult':
        return this.link
          ? void this.routerCall(this.deps.router.commandResult(this.link, frame.value))
          : this.end(status.FAILED_PRECONDITION, 'the first frame must be Hello');
      default:
        return this.end(status.INVALID_ARGUMENT, 'empty or unknown uplink frame');
    }
  }

  private async onHello(hello: Hello): Promise<void> {
    if (this.gatewayId !== undefined) return this.end(status.INVALID_ARGUMENT, 'Hello sent twice on one stream');
    if (!ID_PATTERN.test(hello.gatewayId)) {
      return this.end(
        status.INVALID_ARGUMENT,
        `Hello.gatewayId "${hello.gatewayId.slice(0, 140)}" is not 1-128 of [A-Za-z0-9._:-]`,
      );
    }
    if (this.claims && this.claims.sub !== hello.gatewayId) {
      return this.end(
        status.PERMISSION_DENIED,
        `Hello.gatewayId "${hello.gatewayId}" is not the token's subject "${this.claims.sub}"`,
      );
    }
    this.gatewayId = hello.gatewayId;
    this.logger = this.logger.child({ gatewayId: hello.gatewayId });
    this.deps.registry.claim(this, hello.gatewayId);
    let lastCommittedSeq: number;
    try {
      lastCommittedSeq = await this.deps.sink.lastSeq(hello.gatewayId);
    } catch (err: unknown) {
      return this.end(status.UNAVAILABLE, `sink unavailable: ${errorMessage(err)}`);
    }
    if (this.ended) return;
    const limits = { ...this.deps.limits, maxBatchesInFlight: this.credit };
    this.call.write({
      frame: { $case: 'welcome', value: { sessionId: this.id, limits, lastCommittedSeq, answersHeartbeats: true } },
    });
    this.logger.info(
      {
        version: hello.version,
        lastAckedSeq: hello.lastAckedSeq,
        lastCommittedSeq,
        heartbeatIntervalMs: hello.heartbeatIntervalMs,
      },
      'uplink stream open',
    );
    this.link = {
      gatewayId: hello.gatewayId,
      sendCommand: (command) => this.writeIfOpen({ frame: { $case: 'command', value: command } }),
      sendCommandAck: (commandId, commandStatus) =>
        this.writeIfOpen({ frame: { $case: 'commandAck', value: { commandId, status: commandStatus } } }),
    };
    void this.routerCall(this.deps.router.linked(this.link));
  }

  private onBatch(batch: TelemetryBatch): void {
    const gatewayId = this.gatewayId;
    if (gatewayId === undefined) return this.end(status.FAILED_PRECONDITION, 'the first frame must be Hello');
    const records = batch.records;
    if (records.length === 0) return this.end(status.INVALID_ARGUMENT, 'TelemetryBatch with no records');
    if (this.credit <= 0)
      return this.end(status.RESOURCE_EXHAUSTED, 'TelemetryBatch sent without credit: wait for Credit frames');
    this.credit--;
    let previous = 0;
    let rejected: RecordRejection[] | undefined;
    for (const r of records) {
      if (!(r.seq > previous))
        return this.end(
          status.INVALID_ARGUMENT,
          `seq ${r.seq} after ${previous}: seqs must be positive and ascending in a batch`,
        );
      previous = r.seq;
      const reason = invalidField(r, this.knownDevices) ?? this.deps.faults.rejects(r.payload);
      if (reason !== undefined) (rejected ??= []).push({ seq: r.seq, reason });
    }
    const ack: Ack = { fromSeq: records[0]!.seq, throughSeq: previous, rejected: rejected ?? [] };
    const valid = rejected ? records.filter((r) => !rejected.some((x) => x.seq === r.seq)) : records;
    if (rejected) this.logger.warn({ rejected }, 'records rejected as invalid');
    this.pending++;
    if (valid.length === 0) return this.acked(ack, true);
    this.deps.queue.submit({ gatewayId, records: valid }).then(
      () => this.acked(ack, true),
      (err: unknown) => this.end(status.UNAVAILABLE, `sink commit failed: ${errorMessage(err)}`),
    );
  }

  private onGap(gap: Gap): void {
    const gatewayId = this.gatewayId;
    if (gatewayId === undefined) return this.end(status.FAILED_PRECONDITION, 'the first frame must be Hello');
    const invalid = invalidGap(gap);
    if (invalid) return this.end(status.INVALID_ARGUMENT, `Gap ${gap.fromSeq}..${gap.toSeq}: ${invalid}`);
    this.logger.warn(
      { fromSeq: gap.fromSeq, toSeq: gap.toSeq, reason: gap.reason, count: gap.count },
      'the gateway reports records it could not keep',
    );
    this.pending++;
    this.deps.sink
      .recordGap(gatewayId, { fromSeq: gap.fromSeq, toSeq: gap.toSeq, reason: gap.reason, count: gap.count, timeMs: gap.timeMs })
      .then(
        () => this.acked({ fromSeq: gap.fromSeq, throughSeq: gap.toSeq, rejected: [] }, false),
        (err: unknown) => this.end(status.UNAVAILABLE, `sink commit failed: ${errorMessage(err)}`),
      );
  }

  /** Sends the ack (and for a batch, a credit to replace it) once fault injection lets it through. */
  private acked(ack: Ack, batch: boolean): void {
    this.deps.faults.pass(() => {
      this.pending--;
      if (this.call.writableEnded || this.call.cancelled) return;
      this.call.write({ frame: { $case: 'ack', value: ack } });
      if (batch && !this.ended) {
        this.credit++;
        this.call.write({ frame: { $case: 'credit', value: { batches: 1 } } });
      }
      // The gateway half-closed earlier: its last ack is out, close our side.
      if (this.ended && this.pending === 0) this.call.end();
    });
  }

  /** Commands are a side channel: a store that fails is logged, and the stream of records goes on. */
  private async routerCall(work: Promise<void>): Promise<void> {
    try {
      await work;
    } catch (err: unknown) {
      this.logger.error({ err: (err as Error).message }, 'command store failed');
    }
  }

  private writeIfOpen(frame: DownlinkFrame): void {
    if (!this.ended && !this.call.writableEnded) this.call.write(frame);
  }

  private cleanup(): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.expiry);
    if (this.link) this.deps.router.unlinked(this.link);
    if (this.gatewayId !== undefined) this.deps.registry.release(this, this.gatewayId);
  }
}

/** What is wrong with a gap, if anything. */
function invalidGap(gap: Gap): string | undefined {
  if (!(gap.fromSeq >= 1 && gap.toSeq >= gap.fromSeq)) return 'fromSeq must be at least 1 and at most toSeq';
  if (gap.count > gap.toSeq - gap.fromSeq + 1) return `count ${gap.count} is more than the range holds`;
  if (gap.reason === '' || !isLabel(gap.reason)) return 'reason must be 1-128 characters without control characters';
  return undefined;
}

/** What is wrong with a record's fields, if anything: a compromised gateway must not put garbage in the sink. */
function invalidField(r: TelemetryRecord, knownDevices: Set<string>): string | undefined {
  if (!knownDevices.has(r.deviceId)) {
    if (!DEVICE_ID_PATTERN.test(r.deviceId))
      return `deviceId "${r.deviceId.slice(0, 140)}" is not a device id (1-128, no / + # or control character)`;
    if (knownDevices.size < MAX_KNOWN_DEVICES) knownDevices.add(r.deviceId);
  }
  if (!isLabel(r.stream)) return 'stream is longer than 128 characters or has control characters';
  if (!isLabel(r.contentType)) return 'contentType is longer than 128 characters or has control characters';
  if (r.payload.length > MAX_PAYLOAD_BYTES) return `payload of ${r.payload.length} bytes, over ${MAX_PAYLOAD_BYTES}`;
  return undefined;
}
