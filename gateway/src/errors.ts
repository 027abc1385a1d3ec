/**
 * Every error class of the gateway, in one module (as nats.js keeps errors.ts): typed, with a stable `name` to
 * branch on and the `cause` kept. Grouped by where they arise; what each refusal answers on the wire is decided
 * in refusals.ts, what is retried in uplink/is-retryable.ts. PIPELINE_ERRORS lists the classes an error keeps
 * when it crosses from the journal thread (common/src/worker-rpc.ts re-creates them by name).
 */
import { status } from '@grpc/grpc-js';
import { ConfigError, FleetgateError } from '@fleetgate/core';
import type { ErrorClasses } from '@fleetgate/common';
import {
  DISCONNECTS,
  grpcStatus,
  type ConnackCode,
  type DeviceLinkRefusal,
  type DisconnectReason,
  type MqttRefusal,
} from './refusals.ts';

// ---- The journal (journal/): what an append or an open can meet.

/** The journal cannot take this append: it is full (limit, with reject-new) or the disk is. */
export class JournalFullError extends FleetgateError {
  override name = 'JournalFullError';
  constructor(readonly reason: 'limit' | 'disk') {
    super(
      reason === 'disk'
        ? 'the disk is full: the journal takes nothing until space returns'
        : 'the journal is full (reject-new): try again later',
    );
  }
}

/** The journal's store cannot be used as it is (written by a newer schema, say). */
export class JournalError extends FleetgateError {
  override name = 'JournalError';
}

// ---- The journal thread (pipeline/).

/** The journal thread failed, exited, or could not commit; `cause` says what it met. */
export class PipelineError extends FleetgateError {
  override name = 'PipelineError';
}

/** What the main thread re-creates, by name, of the errors the journal thread answers with. */
export const PIPELINE_ERRORS: ErrorClasses = {
  PipelineError,
  JournalFullError,
  JournalError,
  ConfigError,
  FleetgateError,
  RangeError,
};

// ---- The uplink (uplink/): why a session ended. Every one ends the session and is retried
// (uplink/is-retryable.ts decides how soon); none is thrown to the uplink's owner; UplinkStats.lastError is the
// message.

/** Base of the uplink's own errors. */
export class UplinkError extends FleetgateError {
  override name = 'UplinkError';
}

/** The backend broke the protocol (a second Welcome, an ack for seqs never sent): freeing on its word could lose data. */
export class UplinkProtocolError extends UplinkError {
  override name = 'UplinkProtocolError';
  constructor(message: string) {
    super(`protocol error: ${message}`);
  }
}

/** The backend said no Welcome within welcomeTimeoutMs. */
export class WelcomeTimeoutError extends UplinkError {
  override name = 'WelcomeTimeoutError';
  constructor(readonly timeoutMs: number) {
    super(`no Welcome within ${timeoutMs} ms`);
  }
}

/** A backend that answers heartbeats sent nothing for deadAfterMs. */
export class BackendSilentError extends UplinkError {
  override name = 'BackendSilentError';
  constructor(
    readonly quietMs: number,
    readonly deadAfterMs: number,
  ) {
    super(`the backend sent nothing for ${quietMs} ms, not even a heartbeat answer (dead after ${deadAfterMs} ms)`);
  }
}

/** The backend ended the stream (with status OK): it may be restarting; the session starts over. */
export class StreamEndedError extends UplinkError {
  override name = 'StreamEndedError';
  constructor() {
    super('the backend ended the stream');
  }
}

/** The gateway's token could not be read (getToken threw): an operator may be putting one in place. */
export class NoTokenError extends UplinkError {
  override name = 'NoTokenError';
  constructor(cause: unknown) {
    super(`no token for the backend: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/**
 * The journal could not take a Welcome (a full disk refused the renumbering or its mark): nothing may be sent
 * under the old numbering, so the session ends and starts over.
 */
export class WelcomeNotTakenError extends UplinkError {
  override name = 'WelcomeNotTakenError';
  constructor(cause: unknown) {
    super(`the journal could not take the Welcome: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/** The uplink's owner ended the session (Uplink.restart), e.g. because the journal was renumbered. */
export class SessionRestartError extends UplinkError {
  override name = 'SessionRestartError';
}

// ---- MQTT ingress (ingress/): the errors handed to aedes, which acts on them. It answers a ConnectRefusedError
// with its CONNACK return code and closes a connection whose PUBLISH was refused, then emits them as
// 'clientError' (mqtt-ingress.ts counts those).

/** A CONNECT refused: aedes writes `returnCode` into the CONNACK, then closes the connection [MQTT-3.2.2-5]. */
export class ConnectRefusedError extends FleetgateError {
  override name = 'ConnectRefusedError';
  constructor(
    readonly reason: MqttRefusal,
    /** aedes reads it by this name (lib/handlers/connect.js). */
    readonly returnCode: ConnackCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A PUBLISH refused: MQTT 3.1.1 has no other answer than closing the connection [MQTT-3.3.5-2]; aedes does. */
export class PublishRefusedError extends FleetgateError {
  override name = 'PublishRefusedError';
  constructor(
    readonly reason: MqttRefusal,
    detail: string,
    /** The journal's error, when the journal refused it. */
    options?: { cause?: unknown },
  ) {
    super(`publish refused (${reason}): ${detail}`, options);
  }
}

/** A PUBLISH on a connection ingress never admitted (authenticate did not say yes): aedes closes it. */
export class NotAuthenticatedError extends FleetgateError {
  override name = 'NotAuthenticatedError';
  constructor(readonly clientId: string) {
    super('not authenticated');
  }
}

// ---- The device link (device-link/): how the gateway ends a stream, as an error emitted on the call, whose
// `code` and `details` grpc-js sends as the stream's status (it reads them by these names). README "The device
// SDK" lists the statuses for device authors.

/** A stream the gateway ends with a status other than OK. */
export class DeviceStreamError extends FleetgateError {
  override name = 'DeviceStreamError';
  readonly details: string;
  constructor(
    readonly code: status,
    details: string,
    options?: { cause?: unknown },
  ) {
    super(details, options);
    this.details = details;
  }
}

/** The device did something the gateway refuses: counted by reason (deviceLink.refusals in /v1/stats). */
export class DeviceLinkRefusedError extends DeviceStreamError {
  override name = 'DeviceLinkRefusedError';
  constructor(
    readonly reason: DeviceLinkRefusal,
    details: string,
    /** `code` only where the table's status does not fit (a frame before the Welcome: FAILED_PRECONDITION). */
    options?: { cause?: unknown; code?: status },
  ) {
    super(options?.code ?? grpcStatus(reason), details, options);
  }
}

/** The gateway ended a stream it had accepted: the token expired or was revoked, or the device connected again. */
export class DeviceDisconnectedError extends DeviceStreamError {
  override name = 'DeviceDisconnectedError';
  constructor(readonly reason: DisconnectReason) {
    super(DISCONNECTS[reason].grpc, DISCONNECTS[reason].details);
  }
}

/** The gateway is shutting down: the device should reconnect (to it once back, or to another). */
export class GatewayShutdownError extends DeviceStreamError {
  override name = 'GatewayShutdownError';
  constructor() {
    super(status.UNAVAILABLE, 'the gateway is shutting down');
  }
}
