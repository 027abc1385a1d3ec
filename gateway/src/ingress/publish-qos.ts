/**
 * The last step of a PUBLISH (authorize-publish.ts): the telemetry becomes a record for the journal, and its QoS
 * decides when aedes and the device hear about it.
 *
 *   QoS 0  append; aedes goes on at once (held only while the journal thread is congested). A journal refusal
 *          loses the message: counted and logged, the connection stays.
 *   QoS 1  append; aedes sees QoS 0, so it neither acks nor waits; the PUBACK is written by PubackWriter once the
 *          commit returned (puback-writer.ts says why not aedes) [MQTT-4.3.2-2]. ConnectionFlow holds aedes back
 *          while too many PUBACKs are pending. A journal refusal: no PUBACK, the connection is closed, the device
 *          resends after reconnecting.
 *   QoS 2  aedes runs PUBREC/PUBREL/PUBCOMP; the callback (and so PUBREC) waits for the commit. A journal refusal
 *          is a refused PUBLISH (refuse-publish.ts).
 *
 * The QoS 1 path is the hot one: no closure or allocation beyond the record, the append callback and the
 * admission callback, and no named closure (tsx, with esbuild's keepNames, would define its name per message).
 */
import type { Socket } from 'node:net';
import type { Client, PublishPacket } from 'aedes';
import type { Clock } from '@fleetgate/core';
import { type NewRecord } from '../journal/journal.ts';
import type { AedesRuntime } from './aedes-runtime.ts';
import type { DeviceConnection } from './device-connection.ts';
import type { IngressCounters } from './ingress-counters.ts';
import type { PubackWriter } from './puback-writer.ts';
import type { RecordAppender } from './record-appender.ts';
import { contentTypeOf } from './record-format.ts';
import type { PublishRefusals } from './refuse-publish.ts';
import { JOURNAL_REFUSAL_LOG } from '../refusals.ts';
import { JournalFullError } from '../errors.ts';

export type PublishCallback = (err?: Error | null) => void;

export interface PublishQosDeps {
  pipeline: RecordAppender;
  pubacks: PubackWriter;
  counters: IngressCounters;
  refusals: PublishRefusals;
  runtime: AedesRuntime;
  clock: Clock;
}

export class PublishQos {
  constructor(private readonly deps: PublishQosDeps) {}

  /** Journals a device's telemetry on `stream`, by its QoS. */
  toJournal(
    client: Client,
    connection: DeviceConnection,
    packet: PublishPacket,
    payload: Buffer,
    stream: string,
    callback: PublishCallback,
  ): void {
    const record: NewRecord = {
      deviceId: connection.deviceId,
      stream,
      payload,
      contentType: contentTypeOf(packet),
      deviceSeq: 0,
      deviceEpoch: '',
      deviceTimeMs: 0,
      gatewayTimeMs: this.deps.clock.now(),
    };
    // A will [MQTT-3.1.2-8] is published by aedes for a client that is gone: there is no one to acknowledge.
    const qos = packet.messageId === undefined ? 0 : packet.qos;
    switch (qos) {
      case 0:
        return this.qos0(connection, record, callback);
      case 1:
        return this.qos1(client, connection, packet, record, callback);
      default:
        return this.qos2(client, packet, record, callback);
    }
  }

  private qos0(connection: DeviceConnection, record: NewRecord, callback: PublishCallback): void {
    const { pipeline, counters } = this.deps;
    counters.accepted(record.payload.length, 'qos0');
    pipeline.append(record, (err) => {
      if (err)
        counters.refused(journalRefusal(err), { deviceId: connection.deviceId, err: err.message }, JOURNAL_REFUSAL_LOG.qos0);
    });
    return pipeline.congested ? connection.flow.admit(() => callback(null), true) : callback(null);
  }

  private qos1(
    client: Client,
    connection: DeviceConnection,
    packet: PublishPacket,
    record: NewRecord,
    callback: PublishCallback,
  ): void {
    const { pipeline, pubacks } = this.deps;
    this.deps.counters.accepted(record.payload.length, 'qos1');
    const messageId = packet.messageId!;
    const flow = connection.flow;
    flow.pending++;
    flow.appended++;
    packet.qos = 0;
    pipeline.append(record, (err) => {
      if (err) this.afterFailure(client, connection.deviceId, messageId, err);
      else pubacks.write(client.conn as Socket, messageId);
      flow.settled();
    });
    return flow.admit(() => callback(null), pipeline.congested);
  }

  /** A retransmission (DUP) of a PUBLISH aedes already holds is not journaled again [MQTT-4.3.3-2]. */
  private qos2(client: Client, packet: PublishPacket, record: NewRecord, callback: PublishCallback): void {
    const append = () => {
      this.deps.counters.accepted(record.payload.length, 'qos2');
      this.deps.pipeline.append(record, (err) =>
        err ? this.deps.refusals.refuse(client, journalRefusal(err), packet, callback, err) : callback(null),
      );
    };
    if (!packet.dup) return append();
    this.deps.runtime.persistence.incomingGetPacket(client, packet).then(() => callback(null), append);
  }

  /**
   * A QoS 1 message could not be journaled after aedes moved on. MQTT 5: a PUBACK with the reason code (0x97 when
   * the journal is full), the connection stays. MQTT 3.1.1: no PUBACK, and the connection is closed, so the device
   * (which still holds the message) reconnects and sends it again; with a full journal, after a backoff.
   */
  private afterFailure(client: Client, deviceId: string, messageId: number, err: Error): void {
    const reason = journalRefusal(err);
    if (this.deps.refusals.journalRefusedQos1(client, messageId, reason, err.message)) {
      this.deps.counters.refused(reason, { deviceId, err: err.message, protocol: 'mqtt5' }, JOURNAL_REFUSAL_LOG.qos1v5);
      return;
    }
    this.deps.counters.refused(reason, { deviceId, err: err.message }, JOURNAL_REFUSAL_LOG.qos1);
    (client.conn as Socket).destroy();
  }
}

/** Why the journal did not take a message: full (reject-new, or the disk), or failing. */
function journalRefusal(err: Error): 'journal-full' | 'journal-unavailable' {
  return err instanceof JournalFullError ? 'journal-full' : 'journal-unavailable';
}
