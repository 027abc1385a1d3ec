/**
 * MQTT ingress: an aedes broker behind the TCP and TLS listeners. The hooks below are where a connection is
 * admitted and where a PUBLISH becomes a journal row:
 *
 *   CONNECT  -> preConnect: MQTT 3.1 or 3.1.1 only (aedes 1.x answers MQTT 5 with return code 1; counted here)
 *            -> authenticate: token or anonymous (device-auth.ts), connection limit, takeover [MQTT-3.1.4-2]
 *   PUBLISH  -> authorizePublish: ACL, size, topic -> rate queue -> pipeline.append(record)
 *               -> the journal thread commits -> QoS 1: PubackWriter writes the PUBACK (puback-writer.ts says
 *               why not aedes); QoS 2: callback(null), aedes sends PUBREC
 *   SUBSCRIBE -> authorizeSubscribe: ACL, SUBACK 0x80 when refused
 *   delivery -> authorizeForward: ACL again, per message
 *   commands -> published to the device's connection on devices/{id}/commands/{name}/{commandId} (QoS 1);
 *               its answer comes back on devices/{id}/command-results/{commandId} (topics.ts)
 *
 * A PUBACK is written only after the commit returned: it means "on disk". QoS 0 does not wait. When the journal
 * thread is congested, a connection has too many PUBACKs pending, or a device exceeds its rate, the callback
 * is held: aedes then stops reading that socket, which is the backpressure. A refused PUBLISH closes the
 * connection: MQTT 3.1.1 has no other way to refuse one. Every refusal is counted by reason and logged (at most
 * a line a second per reason); a connection ended by the gateway (token expired or revoked, taken over) too.
 */
import type { Socket } from 'node:net';
import {
  Aedes,
  type AedesPublishPacket,
  type AuthenticateError,
  type Client,
  type ConnectPacket,
  type PublishPacket,
  type Subscription,
} from 'aedes';
import { type Clock, formatHostPort, type HostPort, LogSampler, systemClock, systemTimers, type Timers } from '@fleetgate/core';
import type { Logger } from '@fleetgate/common';
import { CommandStatus } from '@fleetgate/protos';
import type { CommandCenter } from '../commands/command-center.ts';
import type { StoredCommand } from '../commands/command-store.ts';
import type { DeviceChannel, DeviceRegistry } from '../commands/device-registry.ts';
import { JournalFullError, type NewRecord } from '../journal/journal.ts';
import { Acl } from './acl.ts';
import type { DeviceAuthenticator } from './device-authenticator.ts';
import { DeviceConnection } from './device-connection.ts';
import { guardFrames } from './frame-guard.ts';
import { MqttListeners, type ListenerSettings } from './mqtt-listeners.ts';
import { PubackWriter } from './puback-writer.ts';
import type { RateLimit } from './rate-queue.ts';
import type { RecordAppender } from './record-appender.ts';
import {
  CONNACK,
  connackCode,
  DISCONNECT_LOG,
  DISCONNECT_REASONS,
  JOURNAL_REFUSAL_LOG,
  MQTT_REFUSALS,
  REFUSALS,
  type ConnackCode,
  type ConnectRefusal,
  type DisconnectReason,
  type MqttRefusal,
} from './refusals.ts';
import { commandTopic, parseDeviceTopic } from './topics.ts';

export interface MqttIngressOptions {
  listeners: Omit<ListenerSettings, 'maxSockets'>;
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
  /** Where connected devices are announced, and what takes their command results. */
  commands: { registry: DeviceRegistry; center: CommandCenter };
  logger: Logger;
  clock?: Clock;
  timers?: Timers;
}

export interface IngressStats {
  listeners: { mqtt?: string; mqtts?: string };
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
}

/** What aedes has at run time beyond its published types, and ingress needs. */
interface AedesRuntime {
  clients: Record<string, Client | undefined>;
  persistence: { incomingGetPacket(client: Client, packet: PublishPacket): Promise<unknown> };
}

const zeroes = <K extends string>(keys: readonly K[]) => Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;

export class MqttIngress {
  private readonly clock: Clock;
  private readonly timers: Timers;
  private readonly logger: Logger;
  private readonly sampler = new LogSampler(1000);
  private readonly pubacks = new PubackWriter();
  /** The client id exactly as CONNECT carried it: aedes replaces an empty one with a generated id. */
  private readonly connectIds = new WeakMap<Client, string>();
  private readonly connections = new WeakMap<Client, DeviceConnection>();
  private readonly counters = {
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
  private listeners: MqttListeners | undefined;
  private acl: Acl;
  private readonly runtime: AedesRuntime;

  private constructor(
    private readonly options: MqttIngressOptions,
    private readonly broker: Aedes,
  ) {
    this.clock = options.clock ?? systemClock;
    this.timers = options.timers ?? systemTimers;
    this.logger = options.logger;
    this.acl = options.acl;
    this.runtime = broker as unknown as AedesRuntime;
    broker.preConnect = this.preConnect;
    broker.authenticate = this.authenticate;
    broker.authorizePublish = this.authorizePublish;
    broker.authorizeSubscribe = this.authorizeSubscribe;
    broker.authorizeForward = this.authorizeForward;
    broker.on('clientReady', (client) => this.announce(client));
    broker.on('clientDisconnect', (client) => this.forget(client));
    broker.on('clientError', (client, err) => this.onClientError(client, err));
    broker.on('connectionError', (client, err) => this.onClientError(client, err));
  }

  static async start(options: MqttIngressOptions): Promise<MqttIngress> {
    const broker = await Aedes.createBroker({ heartbeatInterval: 60_000, connectTimeout: 10_000 });
    const ingress = new MqttIngress(options, broker);
    try {
      ingress.listeners = await MqttListeners.start(
        // Sockets that have not sent CONNECT yet count too: leave room above the connection limit.
        { ...options.listeners, maxSockets: Math.ceil(options.maxConnections * 1.1) + 100 },
        {
          onSocket: (socket) => {
            // A packet may carry the largest payload, a topic of up to 64 KiB and its headers; nothing larger.
            guardFrames(socket, options.maxPayloadBytes + 65_536 + 16, (reason) =>
              ingress.count('packet-too-large', { remote: socket.remoteAddress, detail: reason }),
            );
            broker.handle(socket);
          },
          onTlsError: (err) => ingress.count('tls-handshake', { err: err.message }),
        },
      );
    } catch (err: unknown) {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      throw err;
    }
    return ingress;
  }

  get addresses(): { tcp?: HostPort; tls?: HostPort } {
    return this.listeners?.addresses ?? {};
  }

  stats(): IngressStats {
    const { tcp, tls } = this.addresses;
    return {
      listeners: { ...(tcp ? { mqtt: formatHostPort(tcp) } : {}), ...(tls ? { mqtts: formatHostPort(tls) } : {}) },
      auth: this.options.auth.kind,
      devicesConnected: this.broker.connectedClients,
      ...this.counters,
      refusals: { ...this.refusals },
      disconnects: { ...this.disconnects },
    };
  }

  /** New rules apply to every decision from now on, deliveries on existing subscriptions included. */
  setAcl(acl: Acl): void {
    this.acl = acl;
  }

  /** Ends the connections whose token is no longer valid (after the revocation list changed). */
  endRevoked(isValid: (claims: NonNullable<DeviceConnection['claims']>) => boolean): number {
    let ended = 0;
    for (const client of Object.values(this.runtime.clients)) {
      const claims = client && this.connections.get(client)?.claims;
      if (client && claims && !isValid(claims)) {
        this.endConnection(client, 'token-revoked');
        ended++;
      }
    }
    return ended;
  }

  /** Stops accepting connections and closes the open ones. */
  async close(): Promise<void> {
    const stopped = this.listeners?.close();
    await new Promise<void>((resolve) => this.broker.close(() => resolve()));
    await stopped;
  }

  private readonly preConnect = (client: Client, packet: ConnectPacket, callback: (err: Error | null, ok: boolean) => void) => {
    this.connectIds.set(client, packet.clientId);
    // aedes 1.x then answers CONNACK return code 1 [MQTT-3.1.2-2], which an MQTT 5 client reports as 0x84
    // (unsupported protocol version); without this line the refusal would be silent.
    const version = packet.protocolVersion ?? 4;
    if (version !== 3 && version !== 4) {
      const detail = `MQTT protocol version ${version}${version === 5 ? ' (MQTT 5)' : ''}: this gateway speaks MQTT 3.1.1 and 3.1`;
      this.count('unsupported-protocol-version', {
        clientId: packet.clientId.slice(0, 140),
        returnCode: connackCode('unsupported-protocol-version'),
        detail,
      });
    }
    callback(null, true);
  };

  private readonly authenticate = (
    client: Client,
    _username: string | undefined,
    password: Buffer | undefined,
    done: (err: AuthenticateError | null, ok: boolean | null) => void,
  ) => {
    const clientId = this.connectIds.get(client) ?? '';
    const refuse = (reason: ConnectRefusal, message: string, returnCode: ConnackCode = connackCode(reason)) => {
      this.count(reason, { clientId: clientId.slice(0, 140), returnCode, detail: message });
      done(Object.assign(new Error(message), { returnCode }) as AuthenticateError, false);
    };
    this.options.auth.authenticate(clientId, password).then(
      (result) => {
        if (!result.ok) return refuse(result.reason, result.message);
        const existing = this.runtime.clients[result.deviceId];
        if (!existing && this.broker.connectedClients >= this.options.maxConnections) {
          return refuse('too-many-connections', `${this.options.maxConnections} devices connected`);
        }
        if (existing) this.noteDisconnect(existing, 'taken-over'); // aedes closes it [MQTT-3.1.4-2]
        const connection = new DeviceConnection(result.deviceId, result.claims, {
          maxUnacked: this.options.maxUnackedPerConnection,
          onHold: () => this.counters.heldForBackpressure++,
          ...(this.options.rateLimit ? { rateLimit: this.options.rateLimit } : {}),
          clock: this.clock,
          timers: this.timers,
        });
        this.connections.set(client, connection);
        if (result.claims) connection.expireAt(result.claims.exp * 1000, () => this.endConnection(client, 'token-expired'));
        done(null, true);
      },
      // Not the device's fault, yet counted as token-malformed (as it always was); CONNACK 3, server unavailable.
      (err: unknown) => refuse('token-malformed', `authentication failed: ${(err as Error).message}`, CONNACK.SERVER_UNAVAILABLE),
    );
  };

  private readonly authorizePublish = (client: Client | null, packet: PublishPacket, callback: (err?: Error | null) => void) => {
    // The broker's own publishes (wills, $SYS) have no client.
    if (!client) return callback(null);
    const connection = this.connections.get(client);
    if (!connection) return callback(new Error('not authenticated'));
    const deviceId = connection.deviceId;
    if (!this.acl.canPublish(deviceId, packet.topic)) return this.refuse(client, 'publish-denied', packet, callback);
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    if (payload.length > this.options.maxPayloadBytes) return this.refuse(client, 'payload-too-large', packet, callback);
    const topic = parseDeviceTopic(packet.topic);
    if (topic?.kind === 'command-result' && topic.deviceId === deviceId) {
      const result = parseCommandResult(topic.commandId, payload);
      if (!result) return this.refuse(client, 'invalid-command-result', packet, callback);
      this.options.commands.center.fromDevice(deviceId, result);
      this.counters.localMessages++;
      return callback(null);
    }
    if (topic?.kind !== 'telemetry' && topic?.kind !== 'invalid-stream') {
      this.counters.localMessages++;
      return callback(null);
    }
    // Telemetry is journaled under the device's own id only, whatever the ACL lets it publish to.
    if (topic.deviceId !== deviceId) return this.refuse(client, 'foreign-telemetry', packet, callback);
    if (topic.kind === 'invalid-stream') return this.refuse(client, 'invalid-stream', packet, callback);
    // No named closure on this path: tsx (esbuild keepNames) would define its name on every message.
    if (!connection.rate) return this.journal(client, connection, packet, payload, topic.stream, callback);
    if (connection.rate.submit(() => this.journal(client, connection, packet, payload, topic.stream, callback)))
      this.counters.rateLimited++;
  };

  private journal(
    client: Client,
    connection: DeviceConnection,
    packet: PublishPacket,
    payload: Buffer,
    stream: string,
    callback: (err?: Error | null) => void,
  ): void {
    const record: NewRecord = {
      deviceId: connection.deviceId,
      stream,
      payload,
      contentType: '',
      deviceSeq: 0,
      deviceEpoch: '',
      deviceTimeMs: 0,
      gatewayTimeMs: this.clock.now(),
    };
    const pipeline = this.options.pipeline;
    // A will [MQTT-3.1.2-8] is published by aedes for a client that is gone: there is no one to acknowledge.
    const qos = packet.messageId === undefined ? 0 : packet.qos;
    switch (qos) {
      case 0:
        this.accept(record, 'qos0');
        pipeline.append(record, (err) => {
          if (err) this.count(journalRefusal(err), { deviceId: connection.deviceId, err: err.message }, JOURNAL_REFUSAL_LOG.qos0);
        });
        return pipeline.congested ? connection.flow.admit(() => callback(null), true) : callback(null);
      case 1: {
        // [MQTT-4.3.2-2] PUBACK once the message is ours: after the commit. aedes sees QoS 0, so it neither
        // acks nor waits; PubackWriter acks when the journal thread says the commit returned.
        this.accept(record, 'qos1');
        const messageId = packet.messageId!;
        const flow = connection.flow;
        flow.pending++;
        packet.qos = 0;
        pipeline.append(record, (err) => {
          if (err) this.closeAfterFailure(client, connection.deviceId, err);
          else this.pubacks.write(client.conn as Socket, messageId);
          flow.settled();
        });
        return flow.admit(() => callback(null), pipeline.congested);
      }
      default: {
        // QoS 2: aedes runs PUBREC/PUBREL/PUBCOMP; PUBREC waits for the commit. A retransmission (DUP) of a
        // PUBLISH aedes already holds is not journaled again [MQTT-4.3.3-2].
        const append = () => {
          this.accept(record, 'qos2');
          pipeline.append(record, (err) =>
            err ? this.refuse(client, journalRefusal(err), packet, callback, err) : callback(null),
          );
        };
        if (!packet.dup) return append();
        this.runtime.persistence.incomingGetPacket(client, packet).then(() => callback(null), append);
      }
    }
  }

  private accept(record: NewRecord, qos: 'qos0' | 'qos1' | 'qos2'): void {
    this.counters.messages++;
    this.counters.bytes += record.payload.length;
    this.counters[qos]++;
  }

  /** A refused subscription gets return code 0x80 in its SUBACK [MQTT-3.9.3]; the connection stays. */
  private readonly authorizeSubscribe = (
    client: Client,
    subscription: Subscription,
    callback: (err: Error | null, subscription?: Subscription | null) => void,
  ) => {
    if (this.acl.canSubscribe(client.id, subscription.topic)) return callback(null, subscription);
    this.count('subscribe-denied', { deviceId: client.id, filter: subscription.topic.slice(0, 200) });
    callback(null, null);
  };

  /** Each delivery is checked too: a deny holds inside a broader subscription, and after the rules change. */
  private readonly authorizeForward = (client: Client, packet: AedesPublishPacket): AedesPublishPacket | null =>
    this.acl.canReceive(client.id, packet.topic) ? packet : null;

  private refuse(
    client: Client,
    reason: MqttRefusal,
    packet: PublishPacket,
    callback: (err: Error) => void,
    cause?: Error,
  ): void {
    const detail = cause?.message ?? packet.topic.slice(0, 200);
    this.count(reason, {
      deviceId: client.id,
      topic: packet.topic.slice(0, 200),
      bytes: packet.payload.length,
      cause: cause?.message,
    });
    callback(new Error(`publish refused (${reason}): ${detail}`));
  }

  /**
   * A QoS 1 message could not be journaled after aedes moved on: no PUBACK, and the connection is closed, so the
   * device (which still holds the message) reconnects and sends it again; with a full journal, after a backoff.
   */
  private closeAfterFailure(client: Client, deviceId: string, err: Error): void {
    this.count(journalRefusal(err), { deviceId, err: err.message }, JOURNAL_REFUSAL_LOG.qos1);
    (client.conn as Socket).destroy();
  }

  private endConnection(client: Client, reason: DisconnectReason): void {
    this.noteDisconnect(client, reason);
    client.close();
  }

  private noteDisconnect(client: Client, reason: DisconnectReason): void {
    this.disconnects[reason]++;
    if (this.sampler.take(`disconnect:${reason}`) !== undefined)
      this.logger.info({ deviceId: client.id, reason }, DISCONNECT_LOG);
  }

  /** A connected device is reachable for commands. */
  private announce(client: Client): void {
    const connection = this.connections.get(client);
    if (!connection) return;
    const channel: DeviceChannel = { protocol: 'mqtt', deliver: (command) => this.deliverCommand(client, command) };
    connection.channel = channel;
    this.options.commands.registry.connected(connection.deviceId, channel);
  }

  /**
   * Publishes a command to the device's own connection (whatever it subscribed to). DELIVERED means written
   * to that connection; a device that reconnects before answering gets its unanswered commands again.
   */
  private deliverCommand(client: Client, command: StoredCommand): void {
    const packet = {
      cmd: 'publish' as const,
      topic: commandTopic(command.deviceId, command.name, command.commandId),
      payload: command.payload,
      qos: 1 as const,
      retain: false,
      dup: false,
    };
    client.publish(packet, (err?: Error) => {
      if (!err) this.options.commands.center.delivered(command.commandId);
    });
  }

  private forget(client: Client): void {
    const connection = this.connections.get(client);
    if (connection?.channel) this.options.commands.registry.disconnected(connection.deviceId, connection.channel);
    connection?.close();
    this.connections.delete(client);
  }

  /** Counts a refusal and logs it, at most once a second per reason (refusals.ts has the message). */
  private count(reason: MqttRefusal, fields: Record<string, unknown>, message: string = REFUSALS[reason].log.mqtt): void {
    this.refusals[reason]++;
    const suppressed = this.sampler.take(reason);
    if (suppressed !== undefined) this.logger.warn({ reason, ...fields, suppressedSinceLast: suppressed }, message);
  }

  private onClientError(client: Client | null, err: Error): void {
    // The connection's state stays until 'clientDisconnect': aedes still asks authorizePublish about its will.
    this.counters.clientErrors++;
    if (this.sampler.take('client-error') !== undefined) {
      this.logger.debug({ deviceId: client?.id, err: err.message }, 'MQTT connection ended with an error');
    }
  }
}

const RESULT_STATUSES: Record<string, CommandStatus> = {
  succeeded: CommandStatus.COMMAND_STATUS_SUCCEEDED,
  failed: CommandStatus.COMMAND_STATUS_FAILED,
  rejected: CommandStatus.COMMAND_STATUS_REJECTED,
};

/** A command result published over MQTT: JSON {"status", "payload"?, "message"?}, or undefined if unreadable. */
function parseCommandResult(
  commandId: string,
  payload: Buffer,
): { commandId: string; status: CommandStatus; payload: Buffer; message: string } | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
  const { status, payload: value, message } = (doc ?? {}) as { status?: unknown; payload?: unknown; message?: unknown };
  const known = typeof status === 'string' ? RESULT_STATUSES[status] : undefined;
  if (known === undefined || (message !== undefined && typeof message !== 'string')) return undefined;
  return {
    commandId,
    status: known,
    payload: value === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(value)),
    message: message ?? '',
  };
}

/** Why the journal did not take a message: full (reject-new, or the disk), or failing. */
function journalRefusal(err: Error): 'journal-full' | 'journal-unavailable' {
  return err instanceof JournalFullError ? 'journal-full' : 'journal-unavailable';
}
