/**
 * Refusing a PUBLISH, whichever step refuses it (authorize-publish.ts, or the journal for QoS 2 in publish-qos.ts):
 * counted and logged by reason, then answered by the client's protocol (refusals.ts):
 *
 *   MQTT 3.1.1, 3.1  aedes gets the error and closes the connection: there is no negative acknowledgement
 *                    [MQTT-3.3.5-2].
 *   MQTT 5           the connection stays. A QoS 1 PUBLISH gets a PUBACK, a QoS 2 one a PUBREC, with the table's
 *                    reason code and a Reason String [MQTT-3.4.2-1], written by the gateway (aedes 2.0.0-beta.1 only
 *                    knows 0x87) in the order the PUBLISHes came [MQTT-4.6.0-2]; aedes is handed the PUBLISH as QoS
 *                    0 with the error, so it neither answers nor delivers it. A QoS 0 PUBLISH has nothing to carry a
 *                    code: it is dropped (counted, logged). A reason whose MQTT 5 answer is a DISCONNECT (a protocol
 *                    error, e.g. 0x93) ends the connection with it.
 */
import type { Socket } from 'node:net';
import type { Client, PublishPacket } from 'aedes';
import type { DeviceConnection } from './device-connection.ts';
import type { IngressCounters } from './ingress-counters.ts';
import type { PubackWriter } from './puback-writer.ts';
import { PublishRefusedError } from '../errors.ts';
import { PUBLISH_LOG_MQTT5, REFUSALS, type MqttRefusal } from '../refusals.ts';

export interface PublishRefusalsDeps {
  counters: IngressCounters;
  pubacks: PubackWriter;
  connections: WeakMap<Client, DeviceConnection>;
}

export class PublishRefusals {
  constructor(private readonly deps: PublishRefusalsDeps) {}

  refuse(client: Client, reason: MqttRefusal, packet: PublishPacket, callback: (err: Error) => void, cause?: Error): void {
    const detail = cause?.message ?? packet.topic.slice(0, 200);
    const answer = (REFUSALS[reason] as { mqtt5?: { packet: string; code: number } }).mqtt5;
    const v5 = client.version === 5;
    this.deps.counters.refused(
      reason,
      {
        deviceId: client.id,
        topic: packet.topic.slice(0, 200),
        bytes: packet.payload.length,
        cause: cause?.message,
        ...(v5 ? { protocol: 'mqtt5', reasonCode: answer?.code } : {}),
      },
      v5 && answer?.packet === 'PUBACK' ? PUBLISH_LOG_MQTT5 : undefined,
    );
    const err = new PublishRefusedError(reason, detail, cause ? { cause } : undefined);
    if (!v5) return callback(err);
    const reasonString = problemInformation(client) ? `${reason}: ${detail}` : undefined;
    const { qos, messageId } = packet;
    packet.qos = 0;
    if (answer?.packet === 'DISCONNECT') {
      client.disconnect({ reasonCode: answer.code, ...(reasonString ? { properties: { reasonString } } : {}) }, () => {});
    } else if (qos > 0 && messageId !== undefined) {
      this.ack(client, qos === 1 ? 'puback' : 'pubrec', messageId, answer?.code ?? 0x80, reasonString);
    }
    callback(err);
  }

  /**
   * A QoS 1 message the journal refused after aedes moved on (publish-qos.ts): MQTT 5 gets its PUBACK with the
   * reason code, and the connection stays; false for 3.1.1, whose connection must be closed.
   */
  journalRefusedQos1(client: Client, messageId: number, reason: 'journal-full' | 'journal-unavailable', detail: string): boolean {
    if (client.version !== 5) return false;
    const reasonString = problemInformation(client) ? `${reason}: ${detail}` : undefined;
    this.deps.pubacks.writeRefusal(client.conn as Socket, 'puback', messageId, REFUSALS[reason].mqtt5.code, reasonString);
    return true;
  }

  private ack(client: Client, cmd: 'puback' | 'pubrec', messageId: number, code: number, reasonString?: string): void {
    const write = () => this.deps.pubacks.writeRefusal(client.conn as Socket, cmd, messageId, code, reasonString);
    const flow = this.deps.connections.get(client)?.flow;
    if (flow && cmd === 'puback') flow.inOrder(write);
    else write();
  }
}

/** [MQTT-3.1.2-29]: a client that set Request Problem Information to 0 gets no Reason String on a PUBACK. */
function problemInformation(client: Client): boolean {
  return (client as Client & { _requestProblemInformation?: boolean })._requestProblemInformation !== false;
}
