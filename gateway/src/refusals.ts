/**
 * Every reason the gateway refuses a device, in one table: what the device gets for it on each protocol, and the
 * line logged. MQTT ingress (this folder) and the device link (device-link/) both answer from here and count
 * each refusal under its reason: `ingress.refusals` and `deviceLink.refusals` in /v1/stats,
 * `fleetgate_ingress_refusals_total{protocol,reason}` in /metrics. The reason names are part of that surface.
 *
 * Columns:
 * - mqtt: what an MQTT 3.1.1 (and 3.1) client gets. A refused CONNECT: its CONNACK return
 *   code (section 3.2.2.3), then the connection is closed [MQTT-3.2.2-5]. A refused SUBSCRIBE: 0x80 in its SUBACK
 *   (section 3.9.3), the connection stays. A refused PUBLISH: 'close', since 3.1.1 has no negative acknowledgement:
 *   "it MUST either make a positive acknowledgement ... or close the Network Connection" [MQTT-3.3.5-2].
 * - mqtt5: what an MQTT 5 client gets, each code one MQTT 5 allows in that packet: CONNACK section 3.2.2.2
 *   (connect-hooks.ts writes it, with a Reason String), PUBACK 3.4.2.1 (PUBREC for QoS 2; refuse-publish.ts, the
 *   connection stays), SUBACK 3.9.3 (aedes, 0x87), DISCONNECT 3.14.2.1 (the connection ends). A refused QoS 0
 *   PUBLISH has no PUBACK: it is dropped, counted and logged, the connection stays.
 * - grpc: the status a device-link stream ends with (README "Device SDK", device.proto).
 * - log: the message of the log line, per protocol (at most one line a second per reason, with the reason and
 *   the details as fields).
 */
import { status } from '@grpc/grpc-js';

/** MQTT 3.1.1 CONNACK return codes (section 3.2.2.3, table 3.1). */
export const CONNACK = {
  UNACCEPTABLE_PROTOCOL_VERSION: 1,
  IDENTIFIER_REJECTED: 2,
  SERVER_UNAVAILABLE: 3,
  BAD_USERNAME_OR_PASSWORD: 4,
  NOT_AUTHORIZED: 5,
} as const;
export type ConnackCode = (typeof CONNACK)[keyof typeof CONNACK];

/** MQTT 3.1.1 SUBACK return code: failure (section 3.9.3). */
export const SUBACK_FAILURE = 0x80;

/** The MQTT 5 reason codes below (MQTT 5 section 2.4 lists them all). */
export const MQTT5 = {
  UNSPECIFIED_ERROR: 0x80,
  UNSUPPORTED_PROTOCOL_VERSION: 0x84,
  CLIENT_IDENTIFIER_NOT_VALID: 0x85,
  BAD_USER_NAME_OR_PASSWORD: 0x86,
  NOT_AUTHORIZED: 0x87,
  SERVER_UNAVAILABLE: 0x88,
  SERVER_SHUTTING_DOWN: 0x8b,
  SESSION_TAKEN_OVER: 0x8e,
  TOPIC_NAME_INVALID: 0x90,
  RECEIVE_MAXIMUM_EXCEEDED: 0x93,
  PACKET_TOO_LARGE: 0x95,
  QUOTA_EXCEEDED: 0x97,
  ADMINISTRATIVE_ACTION: 0x98,
  PAYLOAD_FORMAT_INVALID: 0x99,
  /** No reason uses it yet: nothing limits how fast devices connect (--rate-limit slows messages, refuses none). */
  CONNECTION_RATE_EXCEEDED: 0x9f,
  MAXIMUM_CONNECT_TIME: 0xa0,
} as const;
export type Mqtt5Code = (typeof MQTT5)[keyof typeof MQTT5];

export type Mqtt311Answer = { readonly connack: ConnackCode } | { readonly suback: typeof SUBACK_FAILURE } | 'close';

export interface Mqtt5Answer {
  readonly packet: 'CONNACK' | 'PUBACK' | 'SUBACK' | 'DISCONNECT';
  readonly code: Mqtt5Code;
  /** The MQTT 5 section whose table lists this code for this packet. */
  readonly section: string;
}

export interface RefusalRow {
  /** Absent: MQTT never refuses for this reason. */
  readonly mqtt?: Mqtt311Answer;
  readonly mqtt5?: Mqtt5Answer;
  /** Absent: the device link never refuses for this reason. */
  readonly grpc?: status;
  readonly log: { readonly mqtt?: string; readonly grpc?: string };
}

const connack5 = (code: Mqtt5Code) => ({ packet: 'CONNACK', code, section: '3.2.2.2' }) as const;
const puback5 = (code: Mqtt5Code) => ({ packet: 'PUBACK', code, section: '3.4.2.1' }) as const;
const suback5 = (code: Mqtt5Code) => ({ packet: 'SUBACK', code, section: '3.9.3' }) as const;
const disconnect5 = (code: Mqtt5Code) => ({ packet: 'DISCONNECT', code, section: '3.14.2.1' }) as const;

const DEVICE_LINK_LOG = 'device link refused';
/** A CONNECT (MQTT) or a Hello (device link): who the device is, and whether there is room for it. */
const CONNECT_LOG = { mqtt: 'connection refused', grpc: DEVICE_LINK_LOG } as const;
/** A message: what it carries, where it goes. */
const PUBLISH_LOG = { mqtt: 'publish refused, connection closed', grpc: DEVICE_LINK_LOG } as const;

/** The log line of a PUBLISH refused with an MQTT 5 PUBACK/PUBREC reason code (or dropped, QoS 0). */
export const PUBLISH_LOG_MQTT5 = 'publish refused with its reason code, connection stays';

/**
 * What a journal refusal logs on MQTT when aedes was already told to go on (publish-qos.ts): a QoS 0 message is
 * lost and the connection stays; a QoS 1 message gets no PUBACK and its connection is closed (the device resends
 * it). QoS 2 waits for the commit, so it is refused as any PUBLISH is (PUBLISH_LOG).
 */
export const JOURNAL_REFUSAL_LOG = {
  qos0: 'QoS 0 message lost: not journaled',
  qos1: 'message not journaled: no PUBACK, connection closed',
  qos1v5: 'message not journaled: PUBACK with its reason code',
} as const;

export const REFUSALS = {
  // CONNECT, and the device link's Hello.
  'unsupported-protocol-version': {
    // aedes answers it itself (preConnect only counts it): an MQTT 5 client reports return code 1 as 0x84.
    mqtt: { connack: CONNACK.UNACCEPTABLE_PROTOCOL_VERSION },
    mqtt5: connack5(MQTT5.UNSUPPORTED_PROTOCOL_VERSION),
    log: { mqtt: CONNECT_LOG.mqtt },
  },
  'identifier-rejected': {
    mqtt: { connack: CONNACK.IDENTIFIER_REJECTED },
    mqtt5: connack5(MQTT5.CLIENT_IDENTIFIER_NOT_VALID),
    grpc: status.INVALID_ARGUMENT,
    log: CONNECT_LOG,
  },
  // A token that is missing or unusable: the device should get a new one.
  'token-missing': badToken(),
  'token-malformed': badToken(),
  'token-bad-signature': badToken(),
  'token-wrong-algorithm': badToken(),
  'token-expired': badToken(),
  'token-not-yet-valid': badToken(),
  'token-missing-claims': badToken(),
  // A valid token that may not connect.
  'token-wrong-audience': notAuthorized(),
  'token-revoked': notAuthorized(),
  'client-id-mismatch': notAuthorized(),
  'too-many-connections': {
    mqtt: { connack: CONNACK.SERVER_UNAVAILABLE },
    mqtt5: connack5(MQTT5.QUOTA_EXCEEDED),
    grpc: status.RESOURCE_EXHAUSTED,
    log: CONNECT_LOG,
  },
  'tls-handshake': {
    // Before any MQTT: no certificate, an untrusted one, a protocol mismatch. The TLS stack answers.
    mqtt: 'close',
    log: { mqtt: 'TLS handshake failed' },
  },
  // PUBLISH, and the device link's Telemetry.
  'publish-denied': { mqtt: 'close', mqtt5: puback5(MQTT5.NOT_AUTHORIZED), log: PUBLISH_LOG },
  'foreign-telemetry': { mqtt: 'close', mqtt5: puback5(MQTT5.NOT_AUTHORIZED), log: PUBLISH_LOG },
  'invalid-stream': {
    mqtt: 'close',
    mqtt5: puback5(MQTT5.TOPIC_NAME_INVALID),
    grpc: status.INVALID_ARGUMENT,
    log: PUBLISH_LOG,
  },
  'payload-too-large': {
    mqtt: 'close',
    // Over --max-payload-bytes, an administrative limit. Not 0x95 (packet too large): PUBACK cannot carry it.
    mqtt5: puback5(MQTT5.QUOTA_EXCEEDED),
    grpc: status.INVALID_ARGUMENT,
    log: PUBLISH_LOG,
  },
  'packet-too-large': {
    // frame-guard.ts, on the fixed header, whatever the packet. MQTT 5 would announce the limit as the CONNACK's
    // Maximum Packet Size (3.2.2.3.6), which a client must not exceed [MQTT-3.2.2-15].
    mqtt: 'close',
    mqtt5: disconnect5(MQTT5.PACKET_TOO_LARGE),
    log: { mqtt: 'connection closed: oversized packet' },
  },
  'journal-unavailable': {
    mqtt: 'close',
    mqtt5: puback5(MQTT5.UNSPECIFIED_ERROR),
    grpc: status.UNAVAILABLE,
    log: PUBLISH_LOG,
  },
  'journal-full': {
    // --journal-full reject-new, or a full disk: the device keeps the message and resends it after a backoff.
    mqtt: 'close',
    mqtt5: puback5(MQTT5.QUOTA_EXCEEDED),
    grpc: status.RESOURCE_EXHAUSTED,
    log: PUBLISH_LOG,
  },
  'invalid-command-result': { mqtt: 'close', mqtt5: puback5(MQTT5.PAYLOAD_FORMAT_INVALID), log: PUBLISH_LOG },
  'payload-format-invalid': {
    // MQTT 5: the Payload Format Indicator says UTF-8 and the payload is not [MQTT-3.3.2-4], or the Content Type
    // is no label (over 128 characters, or a control character in it).
    mqtt: 'close',
    mqtt5: puback5(MQTT5.PAYLOAD_FORMAT_INVALID),
    log: PUBLISH_LOG,
  },
  'qos2-inflight-exceeded': {
    // More QoS 2 PUBLISHes awaiting PUBREL than the receive maximum the gateway announces (aedes-guards.ts): a
    // protocol error for MQTT 5 [MQTT-3.3.4-9], which ends the connection; 3.1.1 has nothing else either.
    mqtt: 'close',
    mqtt5: disconnect5(MQTT5.RECEIVE_MAXIMUM_EXCEEDED),
    log: { mqtt: 'connection closed: too many QoS 2 messages awaiting PUBREL' },
  },
  // SUBSCRIBE.
  'subscribe-denied': {
    mqtt: { suback: SUBACK_FAILURE },
    mqtt5: suback5(MQTT5.NOT_AUTHORIZED),
    log: { mqtt: 'subscription refused by the ACL' },
  },
  // The device link's own rules (device.proto).
  protocol: {
    // FAILED_PRECONDITION instead for a frame before the Welcome (device-session.ts).
    grpc: status.INVALID_ARGUMENT,
    log: { grpc: DEVICE_LINK_LOG },
  },
  'seq-not-increasing': { grpc: status.INVALID_ARGUMENT, log: { grpc: DEVICE_LINK_LOG } },
  'seq-skipped': { grpc: status.INVALID_ARGUMENT, log: { grpc: DEVICE_LINK_LOG } },
} as const satisfies Record<string, RefusalRow>;

function badToken() {
  return {
    mqtt: { connack: CONNACK.BAD_USERNAME_OR_PASSWORD },
    mqtt5: connack5(MQTT5.BAD_USER_NAME_OR_PASSWORD),
    grpc: status.UNAUTHENTICATED,
    log: CONNECT_LOG,
  } as const;
}

function notAuthorized() {
  return {
    mqtt: { connack: CONNACK.NOT_AUTHORIZED },
    mqtt5: connack5(MQTT5.NOT_AUTHORIZED),
    grpc: status.PERMISSION_DENIED,
    log: CONNECT_LOG,
  } as const;
}

export type Refusal = keyof typeof REFUSALS;

type RefusedOver<P extends 'mqtt' | 'grpc'> = {
  [K in Refusal]: (typeof REFUSALS)[K] extends Record<P, unknown> ? K : never;
}[Refusal];

/** The reasons MQTT ingress counts, in the order /v1/stats and /metrics have always listed them. */
export const MQTT_REFUSALS = [
  'unsupported-protocol-version',
  'identifier-rejected',
  'token-missing',
  'token-malformed',
  'token-bad-signature',
  'token-wrong-algorithm',
  'token-expired',
  'token-not-yet-valid',
  'token-missing-claims',
  'token-wrong-audience',
  'token-revoked',
  'client-id-mismatch',
  'too-many-connections',
  'tls-handshake',
  'publish-denied',
  'foreign-telemetry',
  'invalid-stream',
  'payload-too-large',
  'packet-too-large',
  'journal-unavailable',
  'journal-full',
  'subscribe-denied',
  'invalid-command-result',
  'qos2-inflight-exceeded',
  'payload-format-invalid',
] as const satisfies readonly RefusedOver<'mqtt'>[];
export type MqttRefusal = (typeof MQTT_REFUSALS)[number];

/** The reasons the device link counts, in the order /v1/stats and /metrics have always listed them. */
export const DEVICE_LINK_REFUSALS = [
  'identifier-rejected',
  'token-missing',
  'token-malformed',
  'token-bad-signature',
  'token-wrong-algorithm',
  'token-expired',
  'token-not-yet-valid',
  'token-missing-claims',
  'token-wrong-audience',
  'token-revoked',
  'client-id-mismatch',
  'too-many-connections',
  'protocol',
  'payload-too-large',
  'invalid-stream',
  'seq-not-increasing',
  'seq-skipped',
  'journal-unavailable',
  'journal-full',
] as const satisfies readonly RefusedOver<'grpc'>[];
export type DeviceLinkRefusal = (typeof DEVICE_LINK_REFUSALS)[number];

/** The reasons a CONNECT is refused for: each has its CONNACK return code. */
export type ConnectRefusal = {
  [K in MqttRefusal]: (typeof REFUSALS)[K]['mqtt'] extends { connack: number } ? K : never;
}[MqttRefusal];

export function connackCode(reason: ConnectRefusal): ConnackCode {
  return REFUSALS[reason].mqtt.connack;
}

/** The MQTT 5 CONNACK reason code of a refused CONNECT (3.2.2.2). */
export function connack5Code(reason: ConnectRefusal): Mqtt5Code {
  return REFUSALS[reason].mqtt5.code;
}

export function grpcStatus(reason: DeviceLinkRefusal): status {
  return REFUSALS[reason].grpc;
}

/**
 * Why the gateway itself ended a connection it had accepted (`disconnects` in /v1/stats, both protocols). MQTT
 * 3.1.1 has no DISCONNECT from the server: the connection is closed. MQTT 5 gets a DISCONNECT with the code
 * (section 3.14.2.1) and `details` as its Reason String; the device link ends the stream with the status. On
 * shutdown (SIGTERM) aedes sends every MQTT 5 client DISCONNECT 0x8B, server shutting down (SHUTDOWN_DISCONNECT).
 */
export const DISCONNECTS = {
  'token-expired': {
    mqtt5: disconnect5(MQTT5.NOT_AUTHORIZED),
    grpc: status.UNAUTHENTICATED,
    details: 'device token expired: reconnect with a fresh one',
  },
  'token-revoked': {
    mqtt5: disconnect5(MQTT5.NOT_AUTHORIZED),
    grpc: status.PERMISSION_DENIED,
    details: 'device token revoked',
  },
  // [MQTT-3.1.4-2]: the server disconnects the existing client when the same client id connects again.
  'taken-over': {
    mqtt5: disconnect5(MQTT5.SESSION_TAKEN_OVER),
    grpc: status.ABORTED,
    details: 'the same device connected again',
  },
} as const;
export type DisconnectReason = keyof typeof DISCONNECTS;
/** In the order /v1/stats has always listed them. */
export const DISCONNECT_REASONS = ['token-expired', 'token-revoked', 'taken-over'] as const satisfies readonly DisconnectReason[];

/** What an MQTT 5 client gets when the gateway shuts down (aedes' broker.close, [MQTT-3.14.4-1]). */
export const SHUTDOWN_DISCONNECT = disconnect5(MQTT5.SERVER_SHUTTING_DOWN);

/** MQTT's log line for a connection the gateway ended (the device link does not log them). */
export const DISCONNECT_LOG = 'connection ended by the gateway';
