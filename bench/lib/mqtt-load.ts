/**
 * The MQTT loader of the benchmarks, run as its own process so that it never shares an event loop with what
 * it measures. It is deliberately lean (raw sockets, one pre-encoded PUBLISH per connection whose message id
 * is patched in place, PUBACKs parsed by hand) so that the broker under test, not the loader, is the limit.
 *
 *   node --import tsx bench/lib/mqtt-load.ts '<json LoadSettings>'
 *
 * Each connection keeps `inflight` QoS 1 publishes outstanding and sends the next one as each PUBACK arrives.
 * stdout: a line {"event":"measuring"} when the measured window opens, {"event":"measured"} when it closes,
 * then one {"event":"result", ...LoadResult} line.
 */
import { connect, type Socket } from 'node:net';
import mqttPacket from 'mqtt-packet';
import { latencyHistogram, percentilesMs, recordMs, type Percentiles } from './latency.ts';

export interface LoadSettings {
  host: string;
  port: number;
  connections: number;
  /** QoS 1 publishes outstanding per connection. */
  inflight: number;
  payloadBytes: number;
  warmupSeconds: number;
  seconds: number;
  /** Client ids are `${clientPrefix}${i}`, topics devices/{clientId}/telemetry. */
  clientPrefix: string;
}

export interface LoadResult {
  /** PUBACKs received in the measured window. */
  acked: number;
  /** PUBACKs per second in the measured window. */
  rate: number;
  /** Publish -> PUBACK, in ms, over the measured window. */
  latencyMs: Percentiles;
  /** PUBACKs over the whole run, and publishes still unanswered at the end. */
  totalAcked: number;
  unanswered: number;
  /** CPU time of this process over the measured window, in seconds. */
  cpuSeconds: number;
}

const PUBACK = 4;
const CONNACK = 2;

class LoadConnection {
  private readonly template: Buffer;
  private readonly idOffset: number;
  private readonly sentAt: Float64Array = new Float64Array(65536);
  private nextId = 1;
  private pending: Buffer = Buffer.alloc(0);
  outstanding = 0;
  stopped = false;
  connected!: Promise<void>;
  private onConnack!: () => void;

  constructor(
    private readonly socket: Socket,
    clientId: string,
    payloadBytes: number,
    private readonly onAck: (latencyMs: number) => void,
  ) {
    const topic = `devices/${clientId}/telemetry`;
    this.template = mqttPacket.generate({
      cmd: 'publish', topic, payload: Buffer.alloc(payloadBytes, 0x61), qos: 1, messageId: 1, retain: false, dup: false,
    });
    // Fixed header (1 byte + remaining length), topic (2 + length), then the 2-byte message id.
    let headerBytes = 1;
    while (this.template[headerBytes]! & 0x80) headerBytes++;
    this.idOffset = headerBytes + 1 + 2 + Buffer.byteLength(topic);
    socket.setNoDelay(true);
    this.connected = new Promise((resolve) => (this.onConnack = resolve));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean: true, keepalive: 60 }));
  }

  publish(count: number): void {
    if (this.stopped || count <= 0) return;
    const packets: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      const id = this.nextId;
      this.nextId = id === 65535 ? 1 : id + 1;
      const packet = Buffer.from(this.template);
      packet.writeUInt16BE(id, this.idOffset);
      this.sentAt[id] = performance.now();
      packets.push(packet);
    }
    this.outstanding += count;
    this.socket.write(packets.length === 1 ? packets[0]! : Buffer.concat(packets));
  }

  close(): void {
    this.socket.end(Buffer.from([0xe0, 0x00]));
  }

  private onData(chunk: Buffer): void {
    let buf = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    let acks = 0;
    let offset = 0;
    for (;;) {
      if (buf.length - offset < 2) break;
      let length = 0;
      let multiplier = 1;
      let i = offset + 1;
      let byte: number;
      do {
        if (i >= buf.length) break;
        byte = buf[i++]!;
        length += (byte & 0x7f) * multiplier;
        multiplier *= 128;
      } while (byte & 0x80);
      if (i + length > buf.length || (buf[i - 1]! & 0x80) !== 0) break;
      const type = buf[offset]! >> 4;
      if (type === PUBACK) {
        const id = buf.readUInt16BE(i);
        this.onAck(performance.now() - this.sentAt[id]!);
        acks++;
      } else if (type === CONNACK) {
        if (buf[i + 1] !== 0) throw new Error(`CONNACK refused with return code ${buf[i + 1]}`);
        this.onConnack();
      }
      offset = i + length;
    }
    this.pending = offset < buf.length ? Buffer.from(buf.subarray(offset)) : Buffer.alloc(0);
    if (acks > 0) {
      this.outstanding -= acks;
      this.publish(acks);
    }
  }
}

export async function runLoad(settings: LoadSettings, emit: (event: object) => void): Promise<LoadResult> {
  const histogram = latencyHistogram();
  let measuring = false;
  let acked = 0;
  let totalAcked = 0;
  const onAck = (latencyMs: number) => {
    totalAcked++;
    if (!measuring) return;
    acked++;
    recordMs(histogram, latencyMs);
  };
  const connections = await Promise.all(
    Array.from({ length: settings.connections }, async (_, i) => {
      const socket = connect(settings.port, settings.host);
      await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
      const connection = new LoadConnection(socket, `${settings.clientPrefix}${i}`, settings.payloadBytes, onAck);
      socket.on('error', (err) => {
        throw new Error(`connection ${i}: ${err.message}`);
      });
      await connection.connected;
      return connection;
    }),
  );
  for (const c of connections) c.publish(settings.inflight);
  await sleep(settings.warmupSeconds * 1000);
  measuring = true;
  emit({ event: 'measuring' });
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  await sleep(settings.seconds * 1000);
  measuring = false;
  const elapsed = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  emit({ event: 'measured' });
  for (const c of connections) c.stopped = true;
  const drainDeadline = Date.now() + 10_000;
  while (connections.some((c) => c.outstanding > 0) && Date.now() < drainDeadline) await sleep(20);
  for (const c of connections) c.close();
  return {
    acked,
    rate: Math.round(acked / elapsed),
    latencyMs: percentilesMs(histogram),
    totalAcked,
    unanswered: connections.reduce((n, c) => n + c.outstanding, 0),
    cpuSeconds: +((cpu.user + cpu.system) / 1e6).toFixed(2),
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const settings = JSON.parse(process.argv[2]!) as LoadSettings;
  const emit = (event: object) => process.stdout.write(JSON.stringify(event) + '\n');
  const result = await runLoad(settings, emit);
  emit({ event: 'result', ...result });
  process.exit(0);
}
