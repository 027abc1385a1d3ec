/**
 * The handshake of a device-link stream (protos/fleetgate/v1/device.proto), in order:
 *
 *   1. Hello       once per stream, within 10 s, with an epoch of 1-64 of [A-Za-z0-9-]     else protocol
 *   2. who         the token in the call's metadata (`authorization: Bearer`), the id Hello claims
 *                  (../ingress/device-authenticator.ts)                            else its token-* or id reason
 *   3. room        under --max-connections, or the same device again: it takes over the older stream
 *                                                                                  else too-many-connections
 *   4. resume      the last seq the journal holds for this device and epoch        else journal-unavailable
 *   5. Welcome     {deviceId, lastDurableSeq, limits}: device-session.ts writes it, then takes Telemetry
 *
 * The statuses of the refusals are in ../ingress/refusals.ts.
 */
import type { Metadata } from '@grpc/grpc-js';
import { errorMessage } from '@fleetgate/core';
import type { TokenClaims } from '@fleetgate/common';
import type { DeviceHello, GatewayFrame } from '@fleetgate/protos';
import type { DeviceAuthenticator } from '../ingress/device-authenticator.ts';
import type { DeviceRecordAppender } from '../ingress/record-appender.ts';
import { DeviceDisconnectedError, DeviceLinkRefusedError, type DeviceStreamError } from '../errors.ts';

export const HELLO_TIMEOUT_MS = 10_000;
const EPOCH = /^[A-Za-z0-9-]{1,64}$/;

/** What the handshake does to the session it runs for, and to the one it takes over. */
export interface HandshakeSession {
  /** The stream ended (while the handshake waited). */
  readonly ended: boolean;
  /** The device is known and has its place in the session map: from now on the session is its. */
  identified(deviceId: string, claims: TokenClaims | undefined, epoch: string): void;
  end(reason?: DeviceStreamError): void;
}

export interface HandshakeDeps<S extends HandshakeSession> {
  auth: DeviceAuthenticator;
  pipeline: Pick<DeviceRecordAppender, 'lastDeviceSeq'>;
  /** The open sessions by device id. */
  sessions: Map<string, S>;
  maxConnections: number;
  counters: { takenOver: number };
}

/** 1. Hello, checked as it arrives (before anything is awaited). */
export function helloRefusal(hello: DeviceHello, helloSeen: boolean): DeviceLinkRefusedError | undefined {
  if (helloSeen) return new DeviceLinkRefusedError('protocol', 'Hello sent twice');
  if (!EPOCH.test(hello.epoch)) return new DeviceLinkRefusedError('protocol', 'Hello.epoch must be 1-64 of [A-Za-z0-9-]');
  return undefined;
}

/** 2 to 4: the last durable seq to welcome the device with, its refusal, or undefined if the stream ended meanwhile. */
export async function handshake<S extends HandshakeSession>(
  session: S,
  hello: DeviceHello,
  metadata: Metadata,
  deps: HandshakeDeps<S>,
): Promise<number | DeviceLinkRefusedError | undefined> {
  // 2. who
  const result = await deps.auth.identify(hello.deviceId, bearerToken(metadata));
  if (session.ended) return undefined;
  if (!result.ok) return new DeviceLinkRefusedError(result.reason, result.message);
  // 3. room
  const deviceId = result.deviceId;
  const previous = deps.sessions.get(deviceId);
  if (!previous && deps.sessions.size >= deps.maxConnections) {
    return new DeviceLinkRefusedError('too-many-connections', `${deps.maxConnections} devices connected`);
  }
  session.identified(deviceId, result.claims, hello.epoch);
  if (previous) {
    deps.counters.takenOver++;
    previous.end(new DeviceDisconnectedError('taken-over'));
  }
  deps.sessions.set(deviceId, session);
  // 4. resume
  let lastDurableSeq: number;
  try {
    lastDurableSeq = await deps.pipeline.lastDeviceSeq(deviceId, hello.epoch);
  } catch (err: unknown) {
    return new DeviceLinkRefusedError('journal-unavailable', `journal unavailable: ${errorMessage(err)}`, { cause: err });
  }
  return session.ended ? undefined : lastDurableSeq;
}

/** 5. */
export function welcomeFrame(
  deviceId: string,
  lastDurableSeq: number,
  limits: { maxPayloadBytes: number; maxUnackedMessages: number },
): GatewayFrame {
  return { frame: { $case: 'welcome', value: { deviceId, lastDurableSeq, limits } } };
}

function bearerToken(metadata: Metadata): string | undefined {
  const header = metadata.get('authorization')[0];
  return typeof header === 'string' ? /^Bearer\s+(\S+)$/i.exec(header)?.[1] : undefined;
}
