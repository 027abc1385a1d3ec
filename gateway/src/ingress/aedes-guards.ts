/**
 * What aedes 2.0.0-beta.1 lacks of the security fixes aedes 1.x released after the beta branched, done here until
 * upstream has them (README "Running on an aedes beta"). Each guard is tested against the real broker
 * (test/gateway/aedes-guards.test.ts).
 *
 * - Prototype keys (aedes 1.x GHSA-52qw-whmv-87c5): the beta keeps its clients, brokers, and each client's
 *   subscriptions and duplicates in plain objects, so a client id such as `constructor` read Object.prototype's
 *   function as a connected client and crashed the process. `nullPrototypeMaps` swaps them for objects without a
 *   prototype, before anything is stored in them; device-auth.ts also refuses such ids (identifier-rejected).
 * - Inbound QoS 2 (GHSA-5jvp-3p2v-5qgf): a client that sends QoS 2 PUBLISHes with fresh ids and never PUBREL
 *   grew the broker's store without bound. `IncomingQos2` is that store (the persistence's incoming* methods), with
 *   a cap per client: a PUBLISH past it is refused (qos2-inflight-exceeded: MQTT 5 DISCONNECT 0x93 receive maximum
 *   exceeded [MQTT-3.3.4-9], MQTT 3.1.1 the connection closed).
 * - cleanIncoming (GHSA-p8r9-qf8w-p73r): a clean session ends with its connection [MQTT-3.1.2-6], and so does the
 *   dedup state of its QoS 2 PUBLISHes; the beta kept it forever. `IncomingQos2.clean` drops it when a clean
 *   session connects and when it disconnects.
 */
import type { Aedes, Client, PublishPacket } from 'aedes';

/** The broker's and a new client's lookup tables, without a prototype (call before any client connects). */
export function nullPrototypeMaps(target: Aedes | Client): void {
  const tables = target as unknown as Record<string, unknown>;
  for (const name of ['clients', 'brokers', 'subscriptions', 'duplicates']) {
    const table = tables[name];
    if (table && typeof table === 'object' && !(table instanceof Map)) {
      tables[name] = Object.assign(Object.create(null) as object, table);
    }
  }
}

/** The three incoming-QoS 2 methods aedes calls on its persistence (handlers/publish.js, pubrel.js). */
export interface IncomingStore {
  incomingStorePacket(client: Client, packet: PublishPacket): Promise<void>;
  incomingGetPacket(client: Client, packet: PublishPacket): Promise<PublishPacket>;
  incomingDelPacket(client: Client, packet: PublishPacket): Promise<void>;
}

/**
 * The QoS 2 PUBLISHes each client id has had PUBRECed and not yet PUBRELed, by message id. Bounded: at most
 * `maxPerClient` per client id, reserved by `admit` before the PUBLISH goes on (aedes dispatches a whole read
 * chunk at once, so the count must be taken synchronously).
 */
export class IncomingQos2 implements IncomingStore {
  private readonly byClient = new Map<string, Map<number, PublishPacket | undefined>>();

  constructor(readonly maxPerClient: number) {}

  /** Reserves a slot for this PUBLISH; false when the client already has `maxPerClient` awaiting PUBREL. */
  admit(clientId: string, messageId: number): boolean {
    let held = this.byClient.get(clientId);
    if (held?.has(messageId)) return true;
    if (held && held.size >= this.maxPerClient) return false;
    if (!held) this.byClient.set(clientId, (held = new Map()));
    held.set(messageId, undefined);
    return true;
  }

  /** Gives back a slot reserved by admit for a PUBLISH that was refused after all. */
  release(clientId: string, messageId: number): void {
    const held = this.byClient.get(clientId);
    if (held?.get(messageId) !== undefined) return;
    held?.delete(messageId);
    if (held?.size === 0) this.byClient.delete(clientId);
  }

  /** How many this client id has awaiting PUBREL. */
  count(clientId: string): number {
    return this.byClient.get(clientId)?.size ?? 0;
  }

  /** A clean session's end (or start): its QoS 2 state goes with it [MQTT-3.1.2-6]. */
  clean(clientId: string): void {
    this.byClient.delete(clientId);
  }

  async incomingStorePacket(client: Client, packet: PublishPacket): Promise<void> {
    let held = this.byClient.get(client.id);
    if (!held) this.byClient.set(client.id, (held = new Map()));
    held.set(packet.messageId!, { ...packet });
  }

  async incomingGetPacket(client: Client, packet: PublishPacket): Promise<PublishPacket> {
    const stored = this.byClient.get(client.id)?.get(packet.messageId!);
    if (!stored) throw new Error('no such packet');
    return stored;
  }

  async incomingDelPacket(client: Client, packet: PublishPacket): Promise<void> {
    const held = this.byClient.get(client.id);
    if (!held?.get(packet.messageId!)) throw new Error('no such packet');
    held.delete(packet.messageId!);
    if (held.size === 0) this.byClient.delete(client.id);
  }
}

/** aedes' memory persistence with its incoming QoS 2 methods taken over by `incoming`. */
export function withIncomingStore<P extends object>(persistence: P, incoming: IncomingStore): P {
  return Object.assign(persistence, {
    incomingStorePacket: incoming.incomingStorePacket.bind(incoming),
    incomingGetPacket: incoming.incomingGetPacket.bind(incoming),
    incomingDelPacket: incoming.incomingDelPacket.bind(incoming),
  });
}
