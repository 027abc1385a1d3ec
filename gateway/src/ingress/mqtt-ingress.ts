/**
 * MQTT ingress (MQTT 5, 3.1.1, 3.1): an aedes 2.0.0-beta.1 broker behind the TCP, TLS, WebSocket and secure
 * WebSocket listeners (mqtt-listeners.ts), with guards for what the beta lacks (aedes-guards.ts). This file sets it up and
 * hands each aedes hook to the file that holds it:
 *
 *   socket    -> frame-guard.ts: a packet announcing more than the limit is refused at its header
 *   CONNECT   -> connect-hooks.ts: preConnect (MQTT 5, 3.1.1 or 3.1), authenticate (device-auth.ts, connection
 *                limit, takeover [MQTT-3.1.4-2])
 *   PUBLISH   -> authorize-publish.ts: where a PUBLISH becomes a journal row (acl, size, topic, rate, journal),
 *                then publish-qos.ts (QoS 0/1/2; the PUBACK after the commit, puback-writer.ts)
 *   SUBSCRIBE -> authorize-subscribe.ts: the ACL, SUBACK 0x80 when refused; and again on every delivery
 *   commands  -> mqtt-commands.ts: published to the device's connection; its answers come back as PUBLISHes
 *                (command-results.ts)
 *
 * A PUBACK is written only after the commit returned: it means "on disk". QoS 0 does not wait. When the journal
 * thread is congested, a connection has too many PUBACKs pending, or a device exceeds its rate, the callback
 * is held: aedes then stops reading that socket, which is the backpressure. A refused PUBLISH closes an MQTT
 * 3.1.1 connection (3.1.1 has no other way to refuse one); MQTT 5 gets the reason code (refuse-publish.ts). Every refusal is counted by reason and logged
 * (ingress-counters.ts; what each refusal answers: refusals.ts); a connection ended by the gateway (token
 * expired or revoked, taken over) too.
 */
import { Aedes, type Client } from 'aedes';
import aedesPersistence from 'aedes-persistence';
import mqttPacket from 'mqtt-packet';
import { type Clock, formatHostPort, type HostPort, systemClock, systemTimers, type Timers } from '@fleetgate/core';
import type { Logger } from '@fleetgate/common';
import type { CommandCenter } from '../commands/command-center.ts';
import type { DeviceRegistry } from '../commands/device-registry.ts';
import type { Acl } from './acl.ts';
import { IncomingQos2, nullPrototypeMaps, withIncomingStore } from './aedes-guards.ts';
import { aedesRuntime, type AedesRuntime } from './aedes-runtime.ts';
import { MQTT5 } from '../refusals.ts';
import { PublishPath } from './authorize-publish.ts';
import { SubscribeHooks } from './authorize-subscribe.ts';
import { ConnectHooks } from './connect-hooks.ts';
import type { DeviceAuthenticator } from './device-authenticator.ts';
import type { DeviceConnection } from './device-connection.ts';
import { guardFrames } from './frame-guard.ts';
import { IngressCounters, mqttVersion, type IngressStats } from './ingress-counters.ts';
import { MqttCommands } from './mqtt-commands.ts';
import { MqttListeners, type ListenerSettings, type Transport } from './mqtt-listeners.ts';
import { PubackWriter } from './puback-writer.ts';
import { PublishQos } from './publish-qos.ts';
import { PublishRefusals } from './refuse-publish.ts';
import type { RateLimit } from './rate-queue.ts';
import type { RecordAppender } from './record-appender.ts';

// aedes-persistence is CommonJS (module.exports = the factory) typed with `export default`: under nodenext the
// default import is module.exports, which is the factory itself.
const memoryPersistence = aedesPersistence as unknown as typeof aedesPersistence.default;

export interface MqttIngressOptions {
  listeners: Omit<ListenerSettings, 'maxSockets' | 'maxMessageBytes'>;
  pipeline: RecordAppender;
  auth: DeviceAuthenticator;
  acl: Acl;
  /** Larger payloads are refused. */
  maxPayloadBytes: number;
  /** QoS 1 PUBACKs a connection may have pending before aedes stops reading it. */
  maxUnackedPerConnection: number;
  /** Connected devices at most; one more gets CONNACK 0x03. */
  maxConnections: number;
  /** Per device; none if absent. */
  rateLimit?: RateLimit;
  /**
   * The longest a session may outlive its connection, in seconds: an MQTT 5 Session Expiry Interval above it is
   * lowered to it (and the CONNACK says so), and an MQTT 3.1.1 persistent session (clean session 0) expires after it.
   */
  maxSessionExpirySeconds: number;
  /** Where connected devices are announced, and what takes their command results. */
  commands: { registry: DeviceRegistry; center: CommandCenter };
  logger: Logger;
  clock?: Clock;
  timers?: Timers;
}

export class MqttIngress {
  private readonly counters: IngressCounters;
  /** Each admitted connection's state, from authenticate to 'clientDisconnect'. */
  private readonly connections = new WeakMap<Client, DeviceConnection>();
  /** What each connection came over, for the counts by transport and MQTT version. */
  private readonly transports = new WeakMap<Client, Transport>();
  /** The ACL in force, shared by the publish and subscribe hooks; setAcl replaces it. */
  private readonly rules: { acl: Acl };
  private readonly runtime: AedesRuntime;
  private readonly connect: ConnectHooks;
  private readonly commands: MqttCommands;
  private listeners: MqttListeners | undefined;

  private constructor(
    private readonly options: MqttIngressOptions,
    private readonly broker: Aedes,
    private readonly incoming: IncomingQos2,
  ) {
    const clock = options.clock ?? systemClock;
    const timers = options.timers ?? systemTimers;
    const counters = (this.counters = new IngressCounters(options.logger));
    const connections = this.connections;
    this.rules = { acl: options.acl };
    this.runtime = aedesRuntime(broker);
    this.connect = new ConnectHooks({
      auth: options.auth,
      maxConnections: options.maxConnections,
      maxUnackedPerConnection: options.maxUnackedPerConnection,
      ...(options.rateLimit ? { rateLimit: options.rateLimit } : {}),
      connections,
      counters,
      broker,
      runtime: this.runtime,
      incoming,
      clock,
      timers,
    });
    const pubacks = new PubackWriter();
    const refusals = new PublishRefusals({ counters, pubacks, connections });
    const qos = new PublishQos({
      pipeline: options.pipeline,
      pubacks,
      counters,
      refusals,
      runtime: this.runtime,
      clock,
    });
    const publish = new PublishPath({
      rules: this.rules,
      connections,
      maxPayloadBytes: options.maxPayloadBytes,
      incoming,
      commands: options.commands.center,
      counters,
      refusals,
      qos,
    });
    const subscribe = new SubscribeHooks(this.rules, counters);
    this.commands = new MqttCommands(options.commands, clock);
    broker.preConnect = this.connect.preConnect;
    broker.authenticate = this.connect.authenticate;
    broker.authorizePublish = publish.authorizePublish;
    broker.authorizeSubscribe = subscribe.authorizeSubscribe;
    broker.authorizeForward = subscribe.authorizeForward;
    broker.on('clientReady', (client) => this.announce(client));
    broker.on('clientDisconnect', (client) => this.forget(client));
    // The connection's state stays until 'clientDisconnect': aedes still asks authorizePublish about its will.
    broker.on('clientError', (client, err) => counters.clientError(client?.id, err));
    broker.on('connectionError', (client, err) => counters.clientError(client?.id, err));
  }

  static async start(options: MqttIngressOptions): Promise<MqttIngress> {
    // mqtt-packet (aedes' encoder) otherwise makes a 2-byte Buffer for every message id (65,536 of them, about 6 MB
    // of heap) the first time it writes a packet. The gateway writes its own PUBACKs (puback-writer.ts); what
    // aedes still writes with an id (SUBACKs, commands to devices) can make its two bytes when it writes them.
    mqttPacket.writeToStream.cacheNumbers = false;
    const incoming = new IncomingQos2(receiveMaximum(options));
    // A packet may carry the largest payload, a topic of up to 64 KiB and its headers; nothing larger.
    const maxRemainingLength = options.maxPayloadBytes + 65_536 + 16;
    const broker = await Aedes.createBroker({
      heartbeatInterval: 60_000,
      connectTimeout: 10_000,
      persistence: withIncomingStore(memoryPersistence(), incoming),
      // MQTT 5 CONNACK properties (3.2.2.3): what a client must stay within.
      // Maximum Packet Size counts the whole packet: the fixed header's 1 + at most 4 bytes, then the rest.
      maximumPacketSize: maxRemainingLength + 5,
      // The PUBACK backpressure (puback-writer.ts) and the QoS 2 cap (aedes-guards.ts), announced.
      receiveMaximum: receiveMaximum(options),
      topicAliasMaximum: TOPIC_ALIAS_MAXIMUM,
      sessionExpiryIntervalLimit: options.maxSessionExpirySeconds,
      // Sessions waiting to expire, at most: beyond, a disconnecting session expires at once.
      pendingSessionsLimit: options.maxConnections,
    });
    nullPrototypeMaps(broker);
    const ingress = new MqttIngress(options, broker, incoming);
    const counters = ingress.counters;
    try {
      ingress.listeners = await MqttListeners.start(
        // Sockets that have not sent CONNECT yet count too: leave room above the connection limit.
        {
          ...options.listeners,
          maxSockets: Math.ceil(options.maxConnections * 1.1) + 100,
          maxMessageBytes: maxRemainingLength + 5,
        },
        {
          onStream: (stream, transport, remoteAddress) => {
            let client: Client | undefined;
            guardFrames(stream, maxRemainingLength, (reason) => {
              counters.refused('packet-too-large', { remote: remoteAddress, transport, detail: reason });
              // MQTT 5 (connected): DISCONNECT 0x95 [MQTT-3.2.2-15] before the socket closes; otherwise just closed.
              if (client?.version !== 5 || !client.connected) return false;
              client.disconnect({ reasonCode: MQTT5.PACKET_TOO_LARGE, properties: { reasonString: reason } }, () => {});
              return true;
            });
            client = broker.handle(stream);
            ingress.transports.set(client, transport);
          },
          onTlsError: (err) => counters.refused('tls-handshake', { err: err.message }),
        },
      );
    } catch (err: unknown) {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      throw err;
    }
    return ingress;
  }

  get addresses(): Partial<Record<Transport, HostPort>> {
    return this.listeners?.addresses ?? {};
  }

  stats(): IngressStats {
    const { tcp, tls, ws, wss } = this.addresses;
    return {
      listeners: {
        ...(tcp ? { mqtt: formatHostPort(tcp) } : {}),
        ...(tls ? { mqtts: formatHostPort(tls) } : {}),
        ...(ws ? { ws: formatHostPort(ws) } : {}),
        ...(wss ? { wss: formatHostPort(wss) } : {}),
      },
      auth: this.options.auth.kind,
      devicesConnected: this.broker.connectedClients,
      ...this.counters.snapshot(),
    };
  }

  /** New rules apply to every decision from now on, deliveries on existing subscriptions included. */
  setAcl(acl: Acl): void {
    this.rules.acl = acl;
  }

  /** Ends the connections whose token is no longer valid (after the revocation list changed). */
  endRevoked(isValid: (claims: NonNullable<DeviceConnection['claims']>) => boolean): number {
    let ended = 0;
    for (const client of Object.values(this.runtime.clients)) {
      const claims = client && this.connections.get(client)?.claims;
      if (client && claims && !isValid(claims)) {
        this.connect.end(client, 'token-revoked');
        ended++;
      }
    }
    return ended;
  }

  /**
   * Stops accepting connections and closes the open ones: aedes first, which sends MQTT 5 clients DISCONNECT 0x8B
   * (server shutting down, [MQTT-3.14.4-1]), then the sockets left.
   */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.broker.close(() => resolve()));
    await this.listeners?.close();
  }

  /** A connected device is reachable for commands. */
  private announce(client: Client): void {
    const connection = this.connections.get(client);
    if (!connection) return;
    const transport = this.transports.get(client);
    if (transport) this.counters.connectedOver(transport, mqttVersion(client.version));
    connection.counted = true;
    this.commands.connected(client, connection);
  }

  private forget(client: Client): void {
    // A session that does not outlive its connection [MQTT-3.1.2-6] takes its QoS 2 state along, unless a newer
    // connection with the same id (a takeover) holds it now.
    const clients = this.runtime.clients;
    const current = Object.hasOwn(clients, client.id) ? clients[client.id] : undefined;
    if (isClean(client) && (current === undefined || current === client)) this.incoming.clean(client.id);
    const connection = this.connections.get(client);
    const transport = this.transports.get(client);
    if (connection?.counted && transport) this.counters.disconnectedOver(transport, mqttVersion(client.version));
    if (connection) this.commands.disconnected(connection);
    connection?.close();
    this.connections.delete(client);
  }
}

/** Inbound topic aliases per MQTT 5 connection [MQTT-3.2.2-17]: a few small numbers, each a topic kept. */
const TOPIC_ALIAS_MAXIMUM = 32;

/** QoS 1 and 2 PUBLISHes a connection may have unacknowledged: MQTT 5's Receive Maximum is 1 to 65,535. */
function receiveMaximum(options: MqttIngressOptions): number {
  return Math.min(Math.max(options.maxUnackedPerConnection, 1), 65_535);
}

/** aedes sets `clean` when the session ends with the connection (3.1.1 clean session; MQTT 5 session expiry 0). */
function isClean(client: Client): boolean {
  return (client as Client & { clean?: boolean }).clean !== false;
}
