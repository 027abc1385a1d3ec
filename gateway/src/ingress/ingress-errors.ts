/**
 * The errors MQTT ingress hands aedes. aedes acts on them: it answers a ConnectRefusedError with its CONNACK
 * return code, and closes a connection whose PUBLISH was refused; then it emits them as 'clientError'
 * (mqtt-ingress.ts counts those). What each refusal answers is decided in refusals.ts.
 */
import { FleetgateError } from '@fleetgate/core';
import type { ConnackCode, MqttRefusal } from './refusals.ts';

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
