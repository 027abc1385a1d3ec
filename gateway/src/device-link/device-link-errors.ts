/**
 * How the gateway ends a device-link stream: an error emitted on the call, whose `code` and `details` grpc-js
 * sends as the stream's status (it reads them by these names). What status each refusal gets is decided in
 * ../ingress/refusals.ts; README "Device SDK" lists them for device authors.
 */
import { status } from '@grpc/grpc-js';
import { FleetgateError } from '@fleetgate/core';
import { DISCONNECTS, grpcStatus, type DeviceLinkRefusal, type DisconnectReason } from '../ingress/refusals.ts';

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
