/**
 * Where a PUBLISH becomes a journal row: aedes calls `authorizePublish` for every PUBLISH a client sends, and
 * this is the whole path, in order (the first step that refuses ends it: refuse-publish.ts):
 *
 *   1. acl      the ACL lets this device publish on this topic (acl.ts)                       else publish-denied
 *   2. size     the payload is within --max-payload-bytes                                     else payload-too-large
 *      format   MQTT 5: UTF-8 when the Payload Format Indicator says so [MQTT-3.3.2-4], a Content Type
 *               that is a label (record-format.ts)                                   else payload-format-invalid
 *   3. topic    what the topic is (topics.ts): a command result goes to the command center
 *               (command-results.ts); a topic that is not telemetry is plain MQTT, not journaled;
 *               telemetry must be under the device's own id, on a valid stream     else foreign-telemetry, invalid-stream
 *   4. rate     the device's rate limit: over it, the PUBLISH waits its turn (rate-queue.ts), holding aedes back
 *   5. journal  a record to the pipeline; its QoS says when aedes and the device hear (publish-qos.ts), and the
 *               PUBACK is written after the commit (puback-writer.ts)
 *
 * Then the journal thread commits it (design.md, "The path of a message"). Holding `callback` is the
 * backpressure: aedes reads nothing more from that socket until it is called.
 */
import type { Client, PublishPacket } from 'aedes';
import type { CommandCenter } from '../commands/command-center.ts';
import type { Acl } from './acl.ts';
import type { IncomingQos2 } from './aedes-guards.ts';
import { parseCommandResult } from './command-results.ts';
import type { DeviceConnection } from './device-connection.ts';
import type { IngressCounters } from './ingress-counters.ts';
import { NotAuthenticatedError } from '../errors.ts';
import type { PublishCallback, PublishQos } from './publish-qos.ts';
import type { PublishRefusals } from './refuse-publish.ts';
import { formatHolds } from './record-format.ts';
import { parseDeviceTopic } from './topics.ts';

export interface PublishPathDeps {
  /** The rules in force (replaced when the ACL file is re-read). */
  rules: { readonly acl: Acl };
  connections: WeakMap<Client, DeviceConnection>;
  maxPayloadBytes: number;
  /** QoS 2 PUBLISHes awaiting PUBREL, bounded per client (aedes-guards.ts). */
  incoming: IncomingQos2;
  commands: Pick<CommandCenter, 'fromDevice'>;
  counters: IngressCounters;
  refusals: PublishRefusals;
  qos: PublishQos;
}

export class PublishPath {
  constructor(private readonly deps: PublishPathDeps) {}

  /** aedes' authorizePublish hook. */
  readonly authorizePublish = (client: Client | null, packet: PublishPacket, callback: PublishCallback): void => {
    // The broker's own publishes (wills, $SYS) have no client.
    if (!client) return callback(null);
    const connection = this.deps.connections.get(client);
    if (!connection) return callback(new NotAuthenticatedError(client.id));
    if (packet.qos === 2 && packet.messageId !== undefined) return this.qos2(client, connection, packet, callback);
    this.steps(client, connection, packet, callback);
  };

  /** A QoS 2 PUBLISH takes a slot until its PUBREL (aedes-guards.ts), given back if the steps refuse it. */
  private qos2(client: Client, connection: DeviceConnection, packet: PublishPacket, callback: PublishCallback): void {
    const { incoming } = this.deps;
    const messageId = packet.messageId!;
    if (!incoming.admit(client.id, messageId)) {
      return this.deps.refusals.refuse(client, 'qos2-inflight-exceeded', packet, callback);
    }
    this.steps(client, connection, packet, (err) => {
      if (err) incoming.release(client.id, messageId);
      callback(err);
    });
  }

  private steps(client: Client, connection: DeviceConnection, packet: PublishPacket, callback: PublishCallback): void {
    const { counters } = this.deps;
    const deviceId = connection.deviceId;
    // 1. acl
    if (!this.deps.rules.acl.canPublish(deviceId, packet.topic))
      return this.deps.refusals.refuse(client, 'publish-denied', packet, callback);
    // 2. size
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    if (payload.length > this.deps.maxPayloadBytes)
      return this.deps.refusals.refuse(client, 'payload-too-large', packet, callback);
    // 2b. format (MQTT 5 properties): what the payload says it is must hold
    if (packet.properties !== undefined && !formatHolds(packet, payload))
      return this.deps.refusals.refuse(client, 'payload-format-invalid', packet, callback);
    // 3. topic
    const topic = parseDeviceTopic(packet.topic);
    if (topic?.kind === 'command-result' && topic.deviceId === deviceId)
      return this.commandResult(client, deviceId, topic.commandId, packet, payload, callback);
    if (topic?.kind !== 'telemetry' && topic?.kind !== 'invalid-stream') return this.plainMqtt(callback);
    // Telemetry is journaled under the device's own id only, whatever the ACL lets it publish to.
    if (topic.deviceId !== deviceId) return this.deps.refusals.refuse(client, 'foreign-telemetry', packet, callback);
    if (topic.kind === 'invalid-stream') return this.deps.refusals.refuse(client, 'invalid-stream', packet, callback);
    // 4. rate, 5. journal. No named closure here: tsx (esbuild keepNames) would define its name on every message.
    const { qos } = this.deps;
    if (!connection.rate) return qos.toJournal(client, connection, packet, payload, topic.stream, callback);
    if (connection.rate.submit(() => qos.toJournal(client, connection, packet, payload, topic.stream, callback)))
      counters.counts.rateLimited++;
  }

  /** devices/{id}/command-results/{commandId}: the device's answer to a command, for the command center. */
  private commandResult(
    client: Client,
    deviceId: string,
    commandId: string,
    packet: PublishPacket,
    payload: Buffer,
    callback: PublishCallback,
  ): void {
    const result = parseCommandResult(commandId, payload);
    if (!result) return this.deps.refusals.refuse(client, 'invalid-command-result', packet, callback);
    this.deps.commands.fromDevice(deviceId, result);
    return this.plainMqtt(callback);
  }

  /** Any other topic the ACL allows: aedes delivers it to its subscribers, nothing is journaled. */
  private plainMqtt(callback: PublishCallback): void {
    this.deps.counters.counts.localMessages++;
    callback(null);
  }
}
