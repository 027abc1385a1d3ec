/**
 * Refusing a PUBLISH, whichever step refuses it (authorize-publish.ts, or the journal for QoS 2 in
 * publish-qos.ts): counted and logged by reason, then aedes gets the error and closes the connection, since
 * MQTT 3.1.1 has no negative acknowledgement [MQTT-3.3.5-2] (refusals.ts).
 */
import type { Client, PublishPacket } from 'aedes';
import type { IngressCounters } from './ingress-counters.ts';
import { PublishRefusedError } from '../errors.ts';
import type { MqttRefusal } from '../refusals.ts';

export function refusePublish(
  counters: IngressCounters,
  client: Client,
  reason: MqttRefusal,
  packet: PublishPacket,
  callback: (err: Error) => void,
  cause?: Error,
): void {
  const detail = cause?.message ?? packet.topic.slice(0, 200);
  counters.refused(reason, {
    deviceId: client.id,
    topic: packet.topic.slice(0, 200),
    bytes: packet.payload.length,
    cause: cause?.message,
  });
  callback(new PublishRefusedError(reason, detail, cause ? { cause } : undefined));
}
