/**
 * MQTT ingress: an aedes broker on a TCP listener. Where a PUBLISH becomes a journal row:
 *
 *   aedes parses PUBLISH -> authorizePublish (below): who, which topic, how big -> pipeline.append(record)
 *   -> the journal thread commits -> QoS 1: PubackWriter writes the PUBACK (see puback-writer.ts for why
 *      not aedes); QoS 2: callback(null), aedes sends PUBREC
 *
 * A PUBACK is written only after the commit returned: it means "on disk". QoS 0 needs no answer and does not
 * wait. When the journal thread is congested, or a connection has too many PUBACKs pending, the callback is
 * held: aedes then stops reading that socket, which is the backpressure.
 *
 * A refused PUBLISH closes the connection: MQTT 3.1.1 has no way to refuse one and keep going.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { Aedes, type AuthenticateError, type Client, type ConnectPacket, type PublishPacket, type Subscription } from 'aedes';
import {
  closeServer,
  formatHostPort,
  listen,
  LogSampler,
  systemClock,
  type Clock,
  type HostPort,
  type Logger,
} from '@fleetgate/common';
import type { NewRecord } from '../journal/journal.ts';
import { ConnectionFlow, PubackWriter } from './puback-writer.ts';
import { DEVICE_ID, isOwnFilter, parseDeviceTopic } from './topics.ts';

/** The part of the pipeline ingress needs. */
export interface RecordAppender {
  append(record: NewRecord, done: (err?: Error) => void): void;
  readonly congested: boolean;
}

export interface MqttIngressOptions {
  listen: HostPort;
  pipeline: RecordAppender;
  /** Larger payloads are refused. */
  maxPayloadBytes: number;
  /** QoS 1 PUBACKs a connection may have pending before aedes stops reading it. */
  maxUnackedPerConnection: number;
  logger: Logger;
  clock?: Clock;
}

export const REFUSAL_REASONS = [
  'identifier-rejected',
  'foreign-topic',
  'invalid-stream',
  'payload-too-large',
  'journal-unavailable',
  'subscribe-denied',
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

export interface IngressStats {
  listen: string;
  devicesConnected: number;
  /** Telemetry messages handed to the journal. */
  messages: number;
  bytes: number;
  qos0: number;
  qos1: number;
  qos2: number;
  /** Publishes on a device's own non-telemetry topics (plain MQTT, not journaled). */
  localMessages: number;
  refusals: Record<RefusalReason, number>;
  /** Connections that ended in an error (refusals, protocol errors, resets). */
  clientErrors: number;
  /** PUBLISHes held back (aedes stopped reading their connection) while too many PUBACKs were pending. */
  heldForBackpressure: number;
}

/** CONNACK return codes of MQTT 3.1.1, section 3.2.2.3. */
const CONNACK_IDENTIFIER_REJECTED = 2;


export class MqttIngress {
  private readonly broker: Aedes;
  private readonly server: Server;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly sampler = new LogSampler(1000);
  /** The client id exactly as CONNECT carried it: aedes replaces an empty one with a generated id. */
  private readonly connectIds = new WeakMap<Client, string>();
  private readonly sockets = new Set<Socket>();
  private readonly pubacks = new PubackWriter();
  private readonly flows = new WeakMap<Client, ConnectionFlow>();
  private readonly counters = { messages: 0, bytes: 0, qos0: 0, qos1: 0, qos2: 0, localMessages: 0, clientErrors: 0, heldForBackpressure: 0 };
  private readonly refusals = Object.fromEntries(REFUSAL_REASONS.map((r) => [r, 0])) as Record<RefusalReason, number>;
  private boundAddress: HostPort | undefined;

  private constructor(
    private readonly options: MqttIngressOptions,
    broker: Aedes,
  ) {
    this.broker = broker;
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger;
    broker.preConnect = this.preConnect;
    broker.authenticate = this.authenticate;
    broker.authorizePublish = this.authorizePublish;
    broker.authorizeSubscribe = this.authorizeSubscribe;
    broker.on('clientError', (client, err) => this.onClientError(client, err));
    broker.on('connectionError', (client, err) => this.onClientError(client, err));
    // noDelay: a PUBACK is a 4-byte write; Nagle's algorithm would hold it back behind the client's delayed ACK.
    this.server = createServer({ noDelay: true }, (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      broker.handle(socket);
    });
  }

  static async start(options: MqttIngressOptions): Promise<MqttIngress> {
    const broker = await Aedes.createBroker({ heartbeatInterval: 60_000, connectTimeout: 10_000 });
    const ingress = new MqttIngress(options, broker);
    try {
      ingress.boundAddress = await listen(ingress.server, options.listen, 'MQTT listener (--mqtt)');
    } catch (err: unknown) {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      throw err;
    }
    return ingress;
  }

  get address(): HostPort {
    return this.boundAddress!;
  }

  stats(): IngressStats {
    return {
      listen: formatHostPort(this.address),
      devicesConnected: this.broker.connectedClients,
      ...this.counters,
      refusals: { ...this.refusals },
    };
  }

  /** Stops accepting connections and closes the open ones. */
  async close(): Promise<void> {
    const stopped = closeServer(this.server);
    await new Promise<void>((resolve) => this.broker.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await stopped;
  }

  private readonly preConnect = (client: Client, packet: ConnectPacket, callback: (err: Error | null, ok: boolean) => void) => {
    this.connectIds.set(client, packet.clientId);
    callback(null, true);
  };

  /**
   * Anonymous mode (--allow-anonymous): the device id is the MQTT client id. [MQTT-3.1.3-8] lets a server refuse
   * a client id it cannot use with return code 0x02; an empty one is refused too, as a device needs an identity.
   */
  private readonly authenticate = (
    client: Client,
    _username: string | undefined,
    _password: Buffer | undefined,
    done: (err: AuthenticateError | null, ok: boolean | null) => void,
  ) => {
    const clientId = this.connectIds.get(client) ?? '';
    if (DEVICE_ID.test(clientId)) return done(null, true);
    this.count('identifier-rejected', { clientId: clientId.slice(0, 140) }, 'connection refused: the client id is not a usable device id');
    const err = Object.assign(new Error(`client id must match ${DEVICE_ID}`), { returnCode: CONNACK_IDENTIFIER_REJECTED });
    done(err as AuthenticateError, false);
  };

  private readonly authorizePublish = (client: Client | null, packet: PublishPacket, callback: (err?: Error | null) => void) => {
    // The broker's own publishes (wills, $SYS) have no client.
    if (!client) return callback(null);
    const topic = parseDeviceTopic(packet.topic);
    if (!topic || topic.deviceId !== client.id) return this.refuse(client, 'foreign-topic', packet, callback);
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    if (payload.length > this.options.maxPayloadBytes) return this.refuse(client, 'payload-too-large', packet, callback);
    if (topic.kind === 'invalid-stream') return this.refuse(client, 'invalid-stream', packet, callback);
    if (topic.kind === 'device') {
      this.counters.localMessages++;
      return callback(null);
    }

    const record: NewRecord = {
      deviceId: client.id,
      stream: topic.stream,
      payload,
      contentType: '',
      deviceSeq: 0,
      deviceTimeMs: 0,
      gatewayTimeMs: this.clock.now(),
    };
    this.counters.messages++;
    this.counters.bytes += payload.length;
    const pipeline = this.options.pipeline;
    switch (packet.qos) {
      case 0:
        this.counters.qos0++;
        pipeline.append(record, (err) => {
          if (err) this.count('journal-unavailable', { deviceId: client.id, err: err.message }, 'QoS 0 message lost: journal commit failed');
        });
        return pipeline.congested ? this.flowOf(client).admit(() => callback(null), true) : callback(null);
      case 1: {
        // [MQTT-4.3.2-2] PUBACK once the message is ours: after the commit. aedes sees QoS 0, so it neither
        // acks nor waits; PubackWriter acks when the journal thread says the commit returned.
        this.counters.qos1++;
        const messageId = packet.messageId!;
        const flow = this.flowOf(client);
        flow.pending++;
        packet.qos = 0;
        pipeline.append(record, (err) => {
          if (err) this.closeAfterFailure(client, err);
          else this.pubacks.write(client.conn as Socket, messageId);
          flow.settled();
        });
        return flow.admit(() => callback(null), pipeline.congested);
      }
      default:
        // QoS 2: aedes runs the PUBREC/PUBREL/PUBCOMP exchange; PUBREC waits for the commit.
        this.counters.qos2++;
        pipeline.append(record, (err) => (err ? this.refuse(client, 'journal-unavailable', packet, callback, err) : callback(null)));
    }
  };

  private flowOf(client: Client): ConnectionFlow {
    let flow = this.flows.get(client);
    if (!flow) this.flows.set(client, (flow = new ConnectionFlow(this.options.maxUnackedPerConnection, () => this.counters.heldForBackpressure++)));
    return flow;
  }

  /** A QoS 1 message could not be journaled after aedes moved on: no PUBACK, and the connection is closed. */
  private closeAfterFailure(client: Client, err: Error): void {
    this.count('journal-unavailable', { deviceId: client.id, err: err.message }, 'journal commit failed, connection closed');
    (client.conn as Socket).destroy();
  }

  /** A refused subscription gets return code 0x80 in its SUBACK [MQTT-3.9.3]; the connection stays. */
  private readonly authorizeSubscribe = (
    client: Client,
    subscription: Subscription,
    callback: (err: Error | null, subscription?: Subscription | null) => void,
  ) => {
    if (isOwnFilter(subscription.topic, client.id)) return callback(null, subscription);
    this.count('subscribe-denied', { deviceId: client.id, filter: subscription.topic }, 'subscription refused: outside the device\'s own topics');
    callback(null, null);
  };

  private refuse(client: Client, reason: RefusalReason, packet: PublishPacket, callback: (err: Error) => void, cause?: Error): void {
    const detail = cause?.message ?? packet.topic.slice(0, 200);
    this.count(reason, { deviceId: client.id, topic: packet.topic.slice(0, 200), bytes: packet.payload.length, cause: cause?.message }, 'publish refused, connection closed');
    callback(new Error(`publish refused (${reason}): ${detail}`));
  }

  /** Counts a refusal and logs it, at most once a second per reason. */
  private count(reason: RefusalReason, fields: Record<string, unknown>, message: string): void {
    this.refusals[reason]++;
    const suppressed = this.sampler.take(reason);
    if (suppressed !== undefined) this.logger.warn({ reason, ...fields, suppressedSinceLast: suppressed }, message);
  }

  private onClientError(client: Client, err: Error): void {
    this.counters.clientErrors++;
    if (this.sampler.take('client-error') !== undefined) {
      this.logger.debug({ deviceId: client?.id, err: err.message }, 'MQTT connection ended with an error');
    }
  }
}
