/**
 * A lean MQTT subscriber for the benchmarks' bare-broker baselines, run as its own process: subscribes (QoS 1
 * by default) to `topic`, PUBACKs every QoS 1 delivery, and keeps each delivery's latency: arrival time minus the send time the
 * loader wrote into the first 8 bytes of the payload (mqtt-load.ts `stampPayload`; both clocks are
 * performance.timeOrigin + performance.now(), comparable across processes), and minus its scheduled time
 * (the next 8 bytes).
 *
 *   node build/bench/mqtt-subscriber.js '{"host":"127.0.0.1","port":1883,"topic":"devices/+/telemetry"}'
 *
 * stdout: {"event":"ready"} once subscribed. stdin: one line {"from": ms, "to": ms} (the loader's measured
 * window); it answers, once deliveries have stopped for a moment, {"event":"result", ...SubscriberResult}
 * about the messages sent in that window, and exits.
 */
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import mqttPacket from 'mqtt-packet';
import { splitPackets } from './mqtt-frames.ts';
import { epochNow, latencyHistogram, percentilesMs, recordMs, type Percentiles } from './latency.ts';

export interface SubscriberSettings {
  host: string;
  port: number;
  topic: string;
  /** The subscription's QoS (default 1): deliveries come at the lower of it and the publish's QoS. */
  qos?: 0 | 1;
}

export interface SubscriberResult {
  /** Deliveries over the whole run. */
  received: number;
  /** Deliveries of messages sent in the window, and their send -> delivery latency, and schedule -> delivery. */
  inWindow: number;
  latencyMs: Percentiles;
  fromScheduleMs: Percentiles;
}

const PUBLISH = 3;
const CONNACK = 2;
const SUBACK = 9;

const settings = JSON.parse(process.argv[2]!) as SubscriberSettings;
let sentAt = new Float64Array(1 << 16);
let latency = new Float64Array(1 << 16);
let fromSchedule = new Float64Array(1 << 16);
let received = 0;
let lastDelivery = 0;

const socket = connect(settings.port, settings.host);
socket.setNoDelay(true);
socket.on('error', (err) => {
  process.stderr.write(`mqtt-subscriber: ${err.message}\n`);
  process.exit(1);
});
socket.write(
  mqttPacket.generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clientId: `bench-subscriber-${process.pid}`,
    clean: true,
    keepalive: 60,
  }),
);

let pending: Buffer = Buffer.alloc(0);
socket.on('data', (chunk: Buffer) => {
  const now = epochNow();
  const acks: Buffer[] = [];
  pending = splitPackets(pending, chunk, (buf, first, i) => {
    const type = first >> 4;
    if (type === PUBLISH) {
      const qos = (first >> 1) & 3;
      const topicLength = buf.readUInt16BE(i);
      let payloadAt = i + 2 + topicLength;
      if (qos > 0) {
        acks.push(Buffer.from([0x40, 0x02, buf[payloadAt]!, buf[payloadAt + 1]!]));
        payloadAt += 2;
      }
      if (received === sentAt.length) {
        sentAt = grow(sentAt);
        latency = grow(latency);
        fromSchedule = grow(fromSchedule);
      }
      const sent = buf.readDoubleLE(payloadAt);
      sentAt[received] = sent;
      latency[received] = now - sent;
      fromSchedule[received] = now - buf.readDoubleLE(payloadAt + 8);
      received++;
      lastDelivery = performance.now();
    } else if (type === CONNACK) {
      socket.write(
        mqttPacket.generate({
          cmd: 'subscribe',
          messageId: 1,
          subscriptions: [{ topic: settings.topic, qos: settings.qos ?? 1 }],
        }),
      );
    } else if (type === SUBACK) {
      process.stdout.write(JSON.stringify({ event: 'ready' }) + '\n');
    }
  });
  if (acks.length > 0) socket.write(acks.length === 1 ? acks[0]! : Buffer.concat(acks));
});

createInterface({ input: process.stdin }).once('line', (line) => {
  const window = JSON.parse(line) as { from: number; to: number };
  const deadline = performance.now() + 10_000;
  const report = () => {
    if (performance.now() - lastDelivery < 300 && performance.now() < deadline) return void setTimeout(report, 50);
    const histogram = latencyHistogram();
    const scheduled = latencyHistogram();
    let inWindow = 0;
    for (let k = 0; k < received; k++) {
      if (sentAt[k]! < window.from || sentAt[k]! >= window.to) continue;
      recordMs(histogram, latency[k]!);
      recordMs(scheduled, fromSchedule[k]!);
      inWindow++;
    }
    const result: SubscriberResult = {
      received,
      inWindow,
      latencyMs: percentilesMs(histogram),
      fromScheduleMs: percentilesMs(scheduled),
    };
    process.stdout.write(JSON.stringify({ event: 'result', ...result }) + '\n', () => process.exit(0));
  };
  report();
});

function grow(array: Float64Array<ArrayBuffer>): Float64Array<ArrayBuffer> {
  const bigger = new Float64Array(array.length * 2);
  bigger.set(array);
  return bigger;
}
