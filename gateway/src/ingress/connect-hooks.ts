/**
 * Where an MQTT connection is admitted, aedes' two CONNECT hooks in order:
 *
 *   preConnect    keeps the client id exactly as CONNECT carried it (aedes replaces an empty one with a generated
 *                 id), makes the client's tables prototype-less (aedes-guards.ts); counts a protocol level other
 *                 than 3, 4 or 5, which aedes answers itself with return code 1
 *   authenticate  who the device is (device-authenticator.ts: token or anonymous), room under --max-connections,
 *                 the takeover of an older connection with the same id [MQTT-3.1.4-2]; then its DeviceConnection
 *                 (device-connection.ts), ended when its token expires
 *
 * A refusal is a ConnectRefusedError carrying the CONNACK return code from refusals.ts; MQTT 5 gets the table's
 * reason code and a Reason String, written here.
 */
import type { Socket } from 'node:net';
import type { AuthenticateError, Client, ConnectPacket } from 'aedes';
import mqttPacket from 'mqtt-packet';
import { type Clock, errorMessage, type Timers } from '@fleetgate/core';
import { nullPrototypeMaps, type IncomingQos2 } from './aedes-guards.ts';
import type { AedesRuntime } from './aedes-runtime.ts';
import type { DeviceAuthenticator } from './device-authenticator.ts';
import { DeviceConnection } from './device-connection.ts';
import type { IngressCounters } from './ingress-counters.ts';
import { ConnectRefusedError } from '../errors.ts';
import type { RateLimit } from './rate-queue.ts';
import {
  CONNACK,
  connack5Code,
  connackCode,
  DISCONNECTS,
  MQTT5,
  type ConnackCode,
  type ConnectRefusal,
  type DisconnectReason,
} from '../refusals.ts';

export interface ConnectHooksDeps {
  auth: DeviceAuthenticator;
  /** Connected devices at most; one more is refused (too-many-connections). */
  maxConnections: number;
  /** QoS 1 PUBACKs a connection may have pending before aedes stops reading it. */
  maxUnackedPerConnection: number;
  rateLimit?: RateLimit;
  /** Where each admitted connection's state is kept. */
  connections: WeakMap<Client, DeviceConnection>;
  counters: IngressCounters;
  broker: { readonly connectedClients: number };
  runtime: AedesRuntime;
  /** QoS 2 PUBLISHes awaiting PUBREL: a clean session's go when it connects (aedes-guards.ts). */
  incoming: IncomingQos2;
  clock: Clock;
  timers: Timers;
}

export class ConnectHooks {
  /** The client id exactly as CONNECT carried it (aedes replaces an empty one with a generated id), and Clean Start. */
  private readonly connects = new WeakMap<Client, { clientId: string; clean: boolean }>();

  constructor(private readonly deps: ConnectHooksDeps) {}

  readonly preConnect = (client: Client, packet: ConnectPacket, callback: (err: Error | null, ok: boolean) => void): void => {
    nullPrototypeMaps(client);
    this.connects.set(client, { clientId: packet.clientId, clean: packet.clean !== false });
    // aedes then answers CONNACK return code 1 [MQTT-3.1.2-2]; without this line the refusal would be silent.
    const version = packet.protocolVersion ?? 4;
    if (version !== 3 && version !== 4 && version !== 5) {
      const detail = `MQTT protocol version ${version}: this gateway speaks MQTT 5, 3.1.1 and 3.1`;
      this.deps.counters.refused('unsupported-protocol-version', {
        clientId: packet.clientId.slice(0, 140),
        returnCode: connackCode('unsupported-protocol-version'),
        detail,
      });
    }
    callback(null, true);
  };

  readonly authenticate = (
    client: Client,
    _username: string | undefined,
    password: Buffer | undefined,
    done: (err: AuthenticateError | null, ok: boolean | null) => void,
  ): void => {
    const { clientId, clean } = this.connects.get(client) ?? { clientId: '', clean: true };
    const refuse = (reason: ConnectRefusal, message: string, returnCode: ConnackCode = connackCode(reason), cause?: unknown) => {
      const v5 = client.version === 5;
      const reasonCode =
        returnCode === CONNACK.SERVER_UNAVAILABLE && reason !== 'too-many-connections'
          ? MQTT5.SERVER_UNAVAILABLE
          : connack5Code(reason);
      this.deps.counters.refused(reason, {
        clientId: clientId.slice(0, 140),
        ...(v5 ? { reasonCode } : { returnCode }),
        detail: message,
      });
      // MQTT 5: the table's reason code (aedes maps only return codes 2 to 5) and a Reason String (3.2.2.3.9),
      // written here; the connection then closes [MQTT-3.2.2-7], and aedes, finding it closed, answers nothing more.
      if (v5) writeRefusalConnack(client, reasonCode, `${reason}: ${message}`);
      done(
        new ConnectRefusedError(reason, returnCode, message, cause === undefined ? undefined : { cause }) as AuthenticateError,
        false,
      );
    };
    const { auth, maxConnections } = this.deps;
    if (clientId === '' && (!clean || client.sessionExpiryInterval > 0)) {
      // [MQTT-3.1.3-8]; MQTT 5: a session to resume needs a client id to find it by.
      return refuse('identifier-rejected', 'an empty client id needs a clean session that ends with the connection');
    }
    // An empty client id with a clean session [MQTT-3.1.3-6]: with a token, the device is the token's sub; an
    // anonymous device gets the unique id aedes assigned (MQTT 5: the CONNACK's Assigned Client Identifier).
    const asked =
      clientId !== ''
        ? auth.authenticate(clientId, password)
        : auth.kind === 'anonymous'
          ? auth.authenticate(client.id, undefined)
          : auth.identify('', password?.toString('utf8'));
    asked.then(
      (result) => {
        if (!result.ok) return refuse(result.reason, result.message);
        if (clientId === '') assignId(client, result.deviceId);
        const clients = this.deps.runtime.clients;
        const existing = Object.hasOwn(clients, result.deviceId) ? clients[result.deviceId] : undefined;
        if (!existing && this.deps.broker.connectedClients >= maxConnections) {
          return refuse('too-many-connections', `${maxConnections} devices connected`);
        }
        if (existing) this.deps.counters.disconnected(existing.id, 'taken-over'); // aedes closes it [MQTT-3.1.4-2]
        // [MQTT-3.1.2-4] Clean Start discards the session, its QoS 2 state too (aedes-guards.ts).
        if (clean) this.deps.incoming.clean(result.deviceId);
        this.admit(client, result.deviceId, result.claims);
        done(null, true);
      },
      // Not the device's fault, yet counted as token-malformed (as it always was); CONNACK 3, server unavailable.
      (err: unknown) => refuse('token-malformed', `authentication failed: ${errorMessage(err)}`, CONNACK.SERVER_UNAVAILABLE, err),
    );
  };

  /**
   * Ends a connection the gateway had accepted (its token expired, or was revoked): MQTT 5 gets a DISCONNECT
   * with the reason code and a Reason String (3.14.2.1, 3.14.2.2.3); 3.1.1 has no server DISCONNECT.
   */
  end(client: Client, reason: DisconnectReason): void {
    this.deps.counters.disconnected(client.id, reason);
    const { code } = DISCONNECTS[reason].mqtt5;
    client.disconnect({ reasonCode: code, properties: { reasonString: DISCONNECTS[reason].details } }, () => {});
  }

  private admit(client: Client, deviceId: string, claims: DeviceConnection['claims']): void {
    const { counters, clock, timers } = this.deps;
    const connection = new DeviceConnection(deviceId, claims, {
      maxUnacked: this.deps.maxUnackedPerConnection,
      onHold: () => counters.counts.heldForBackpressure++,
      ...(this.deps.rateLimit ? { rateLimit: this.deps.rateLimit } : {}),
      clock,
      timers,
    });
    this.deps.connections.set(client, connection);
    if (claims) connection.expireAt(claims.exp * 1000, () => this.end(client, 'token-expired'));
  }
}

/** An MQTT 5 CONNACK refusing the connection, then the connection closed; aedes' own answer is then skipped. */
function writeRefusalConnack(client: Client, reasonCode: number, reasonString: string): void {
  const socket = client.conn as Socket;
  if (!socket.destroyed && socket.writable) {
    const connack = {
      cmd: 'connack',
      sessionPresent: false,
      reasonCode,
      properties: { reasonString: reasonString.slice(0, 200) },
    };
    socket.end(mqttPacket.generate(connack as mqttPacket.IConnackPacket, { protocolVersion: 5 }));
  }
  client.close();
}

/** The device id becomes the connection's client id, and MQTT 5 is told it (3.2.2.3.7). */
function assignId(client: Client, deviceId: string): void {
  const writable = client as unknown as { id: string; _assignedClientId?: string };
  writable.id = deviceId;
  if (client.version === 5) writable._assignedClientId = deviceId;
}
