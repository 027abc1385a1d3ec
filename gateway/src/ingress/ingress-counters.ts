/**
 * What MQTT ingress counts (`ingress` in /v1/stats, and the `fleetgate_ingress_*` series in /metrics), and its
 * log lines for refusals, disconnects and connection errors: at most one a second per reason, so that a flood of
 * bad devices does not become a flood of log lines.
 */
import { LogSampler } from '@fleetgate/core';
import type { Logger } from '@fleetgate/common';
import {
  DISCONNECT_LOG,
  DISCONNECT_REASONS,
  MQTT_REFUSALS,
  REFUSALS,
  type DisconnectReason,
  type MqttRefusal,
} from '../refusals.ts';
import { TRANSPORTS, type Transport } from './mqtt-listeners.ts';

/** The MQTT versions a connection may speak: protocol level 3, 4 and 5. */
export const MQTT_VERSIONS = ['3.1', '3.1.1', '5'] as const;
export type MqttVersion = (typeof MQTT_VERSIONS)[number];

export function mqttVersion(protocolLevel: number): MqttVersion {
  return protocolLevel === 5 ? '5' : protocolLevel === 3 ? '3.1' : '3.1.1';
}

/** Connections admitted over one transport in one MQTT version: connected now, and since the start. */
export interface ProtocolCount {
  connected: number;
  connections: number;
}

/** Each count with its labels, for /metrics. */
export function* protocolCounts(
  protocols: IngressStats['protocols'],
): Generator<[{ transport: string; version: string }, ProtocolCount]> {
  for (const [transport, versions] of Object.entries(protocols)) {
    for (const [version, count] of Object.entries(versions)) yield [{ transport, version }, count];
  }
}

export interface IngressStats {
  listeners: { mqtt?: string; mqtts?: string; ws?: string; wss?: string };
  auth: 'token' | 'anonymous';
  devicesConnected: number;
  /** Telemetry messages handed to the journal. */
  messages: number;
  bytes: number;
  qos0: number;
  qos1: number;
  qos2: number;
  /** Publishes on other allowed topics (plain MQTT, not journaled). */
  localMessages: number;
  refusals: Record<MqttRefusal, number>;
  disconnects: Record<DisconnectReason, number>;
  /** Connections that ended in an error (refusals, protocol errors, resets). */
  clientErrors: number;
  /** PUBLISHes held back (aedes stopped reading their connection) while too many PUBACKs were pending. */
  heldForBackpressure: number;
  /** PUBLISHes that waited for their device's rate limit. */
  rateLimited: number;
  /** Admitted connections by transport (tcp, tls, ws, wss) and MQTT version. */
  protocols: Record<Transport, Record<MqttVersion, ProtocolCount>>;
}

export type IngressCounts = Omit<IngressStats, 'listeners' | 'auth' | 'devicesConnected'>;

const zeroes = <K extends string>(keys: readonly K[]) => Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;

export class IngressCounters {
  /** Plain counts, incremented where they happen. */
  readonly counts = {
    messages: 0,
    bytes: 0,
    qos0: 0,
    qos1: 0,
    qos2: 0,
    localMessages: 0,
    clientErrors: 0,
    heldForBackpressure: 0,
    rateLimited: 0,
  };
  private readonly refusals = zeroes(MQTT_REFUSALS);
  private readonly disconnects = zeroes(DISCONNECT_REASONS);
  private readonly sampler = new LogSampler(1000);
  private readonly protocols = Object.fromEntries(
    TRANSPORTS.map((t) => [t, Object.fromEntries(MQTT_VERSIONS.map((v) => [v, { connected: 0, connections: 0 }]))]),
  ) as Record<Transport, Record<MqttVersion, ProtocolCount>>;

  constructor(private readonly logger: Logger) {}

  /** A telemetry message handed to the journal. */
  accepted(payloadBytes: number, qos: 'qos0' | 'qos1' | 'qos2'): void {
    this.counts.messages++;
    this.counts.bytes += payloadBytes;
    this.counts[qos]++;
  }

  /** Counts a refusal and logs it (refusals.ts has the message; a QoS path may say what the refusal cost). */
  refused(reason: MqttRefusal, fields: Record<string, unknown>, message: string = REFUSALS[reason].log.mqtt): void {
    this.refusals[reason]++;
    const suppressed = this.sampler.take(reason);
    if (suppressed !== undefined) this.logger.warn({ reason, ...fields, suppressedSinceLast: suppressed }, message);
  }

  /** The gateway ended a connection it had accepted. */
  disconnected(deviceId: string, reason: DisconnectReason): void {
    this.disconnects[reason]++;
    if (this.sampler.take(`disconnect:${reason}`) !== undefined) this.logger.info({ deviceId, reason }, DISCONNECT_LOG);
  }

  /** A connection ended in an error (aedes' 'clientError' and 'connectionError'). */
  clientError(deviceId: string | undefined, err: Error): void {
    this.counts.clientErrors++;
    if (this.sampler.take('client-error') !== undefined) {
      this.logger.debug({ deviceId, err: err.message }, 'MQTT connection ended with an error');
    }
  }

  /** A connection admitted (aedes' clientReady) over `transport`, speaking `version`. */
  connectedOver(transport: Transport, version: MqttVersion): void {
    const count = this.protocols[transport][version];
    count.connected++;
    count.connections++;
  }

  /** That connection ended. */
  disconnectedOver(transport: Transport, version: MqttVersion): void {
    this.protocols[transport][version].connected--;
  }

  snapshot(): IngressCounts {
    const protocols = Object.fromEntries(
      TRANSPORTS.map((t) => [t, Object.fromEntries(MQTT_VERSIONS.map((v) => [v, { ...this.protocols[t][v] }]))]),
    ) as IngressCounts['protocols'];
    return { ...this.counts, refusals: { ...this.refusals }, disconnects: { ...this.disconnects }, protocols };
  }
}
