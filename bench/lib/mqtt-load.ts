/**
 * The MQTT loader of the benchmarks, run as its own process so that it never shares an event loop with what
 * it measures. It is deliberately lean (raw sockets, one pre-encoded PUBLISH per connection whose message id
 * is patched in place, PUBACKs parsed by hand) so that the broker under test, not the loader, is the limit.
 *
 *   node build/bench/mqtt-load.js '<json LoadSettings>'
 *
 * Every connection connects at once (a connect storm: the time until the last CONNACK is reported; with
 * `connectConcurrency`, at most that many attempts are under way at a time), stays silent for `idleSeconds`, then loads the broker in one of three ways, always QoS 1:
 *   - closed loop (default): each connection keeps `inflight` publishes outstanding and sends the next one as
 *     each PUBACK arrives: as fast as the broker acknowledges;
 *   - paced (`rate`): `rate` messages a second over all connections, sent every `tickMs`, each connection's
 *     schedule offset from the others' so that they do not all send in the same tick; a connection never has
 *     more than `inflight` outstanding, a message it cannot send yet is late, and how late is reported;
 *   - once (`once`): each connection sends `inflight` publishes once; done when every PUBACK is in.
 * Then the connections stay open and silent for `holdSeconds` (a connection the broker closes meanwhile
 * counts as dropped), and close with DISCONNECT.
 * With `stampPayload`, the first 8 bytes of each payload are its send time (float64 LE, ms since the epoch,
 * sub-ms from performance.timeOrigin + performance.now()), for latencies measured where the message lands;
 * the next 8 its scheduled time (paced; else the send time again): a message that waited for an in-flight
 * slot left late, and a latency counted from its schedule includes that wait (no coordinated omission).
 *
 * stdout, one JSON line each: {"event":"connected","at","ms"} after the last CONNACK, {"event":"load","at"}
 * when publishing starts, {"event":"measuring","at"} / {"event":"measured","at"} around the measured window
 * (`at`: ms since the epoch), then one {"event":"result", ...LoadResult} line.
 */
import { connect, type Socket } from 'node:net';
import mqttPacket from 'mqtt-packet';
import { splitPackets } from './mqtt-frames.ts';
import { epochNow, latencyHistogram, percentilesMs, recordMs, type Percentiles } from './latency.ts';

export interface LoadSettings {
  host: string;
  port: number;
  connections: number;
  /** QoS 1 publishes outstanding per connection (closed loop), at most (paced), or sent (once). */
  inflight: number;
  payloadBytes: number;
  warmupSeconds: number;
  seconds: number;
  /** Client ids are `${clientPrefix}${i}`, topics devices/{clientId}/telemetry. */
  clientPrefix: string;
  /** Every Nth connection (i % N === N - 1) speaks MQTT 5, the others 3.1.1; absent or 0: all 3.1.1. */
  mqtt5Every?: number;
  /** Paced: messages per second over all connections. Absent: closed loop. */
  rate?: number;
  /** Paced: the period of the pacing timer, ms (default 5). */
  tickMs?: number;
  /** The first 8 bytes of each payload carry its send time, the next 8 its scheduled time (float64 LE, ms since the epoch). */
  stampPayload?: boolean;
  /** Each connection sends `inflight` publishes once, after every connection is up (`seconds`: the deadline). */
  once?: boolean;
  /** Connected and silent between the last CONNACK and the first publish. */
  idleSeconds?: number;
  /** Connected and silent after the load, before DISCONNECT. */
  holdSeconds?: number;
  /** A connection refused, reset or timed out before its CONNACK is tried again this many times (default 2). */
  connectRetries?: number;
  /** Connection attempts (TCP connect -> CONNACK) under way at once, at most; absent or 0: all at once. */
  connectConcurrency?: number;
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
  /** Publishes sent in the measured window, and per second. */
  sent?: number;
  sentRate?: number;
  /** The measured window, ms since the epoch (the clock of `stampPayload`). */
  window?: { from: number; to: number };
  /** The connect storm: until the last CONNACK; each connection's TCP connect -> CONNACK (its last attempt). */
  connect?: {
    connections: number;
    ms: number;
    latencyMs: Percentiles;
    retried: number;
    failed: number;
    errors: Record<string, number>;
    /** CPU time of this process over the storm, seconds. */
    cpuSeconds: number;
  };
  /** Paced: how late publishes left against their schedule (tick granularity included); `late`: over 2 ticks. */
  scheduleLagMs?: Percentiles & { late: number };
  /** Once: first publish -> last PUBACK. */
  onceMs?: number;
  /** Connections the broker closed (or that failed) after their CONNACK, before the loader closed them. */
  dropped?: number;
}

const PUBACK = 4;
const CONNACK = 2;
const CONNECT_ATTEMPT_TIMEOUT_MS = 30_000;

interface ConnectionEvents {
  onAck(latencyMs: number): void;
  onSent(count: number): void;
  /** Paced: a publish left `behindMs` after its scheduled time. */
  onPacedSent(behindMs: number): void;
}

class LoadConnection {
  private readonly template: Buffer;
  private readonly idOffset: number;
  private readonly payloadOffset: number;
  /** Send time by message id. Ids cycle through 1..sentAt.length-1: far more than can be outstanding at once. */
  private readonly sentAt: Float64Array;
  private nextId = 1;
  private pending: Buffer = Buffer.alloc(0);
  outstanding = 0;
  /** Publishes sent so far (paced mode compares it with the schedule). */
  sentCount = 0;
  stopped = false;
  /** True once the loader itself closes the connection. */
  closing = false;
  /** Closed by the other side (or failed) after the CONNACK. */
  dropped = false;
  readonly connected: Promise<void>;

  constructor(
    private readonly socket: Socket,
    clientId: string,
    payloadBytes: number,
    private readonly stamp: boolean,
    private readonly inflight: number,
    private readonly events: ConnectionEvents,
    protocolVersion: 4 | 5 = 4,
  ) {
    const topic = `devices/${clientId}/telemetry`;
    this.template = mqttPacket.generate(
      {
        cmd: 'publish',
        topic,
        payload: Buffer.alloc(payloadBytes, 0x61),
        qos: 1,
        messageId: 1,
        retain: false,
        dup: false,
      },
      { protocolVersion },
    );
    if (stamp && payloadBytes < 16) throw new Error('stampPayload needs payloads of 16 bytes or more');
    // Fixed header (1 byte + remaining length), topic (2 + length), then the 2-byte message id.
    let headerBytes = 1;
    while (this.template[headerBytes]! & 0x80) headerBytes++;
    this.idOffset = headerBytes + 1 + 2 + Buffer.byteLength(topic);
    // MQTT 5: a property length (0) follows the message id.
    this.payloadOffset = this.idOffset + 2 + (protocolVersion === 5 ? 1 : 0);
    let ids = 64;
    while (ids < inflight * 16 && ids < 65536) ids *= 2;
    this.sentAt = new Float64Array(ids);
    socket.setNoDelay(true);
    this.connected = new Promise((resolve, reject) => {
      let acked = false;
      this.onConnack = (code) => {
        acked = true;
        if (code === 0) return resolve();
        reject(new Error(`CONNACK return code ${code}`));
        socket.destroy();
      };
      socket.once('close', () => {
        if (!acked) reject(new Error('closed before CONNACK'));
        else if (!this.closing) this.dropped = true;
      });
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.write(
      mqttPacket.generate(
        { cmd: 'connect', protocolId: 'MQTT', protocolVersion, clientId, clean: true, keepalive: 60 },
        { protocolVersion },
      ),
    );
  }

  private onConnack: (code: number) => void = () => {};
  /** Paced: sends with no PUBACK to wait for (set by the loader). */
  paced = false;
  /** Paced: publishes due by the schedule so far. */
  due = 0;
  /** Paced: the schedule's time of publish number k (0-based), performance.now() ms. */
  scheduledAt: ((k: number) => number) | undefined;

  publish(count: number): void {
    if (this.stopped || count <= 0 || this.socket.destroyed) return;
    const packets: Buffer[] = [];
    const now = performance.now();
    const epoch = performance.timeOrigin + now;
    for (let i = 0; i < count; i++) {
      const id = this.nextId;
      this.nextId = id === this.sentAt.length - 1 ? 1 : id + 1;
      const packet = Buffer.from(this.template);
      packet.writeUInt16BE(id, this.idOffset);
      if (this.stamp) {
        packet.writeDoubleLE(epoch, this.payloadOffset);
        packet.writeDoubleLE(
          this.scheduledAt ? performance.timeOrigin + this.scheduledAt(this.sentCount + i) : epoch,
          this.payloadOffset + 8,
        );
      }
      this.sentAt[id] = now;
      packets.push(packet);
    }
    this.outstanding += count;
    this.sentCount += count;
    this.events.onSent(count);
    this.socket.write(packets.length === 1 ? packets[0]! : Buffer.concat(packets));
  }

  /** Paced: sends what the schedule says is due, as far as the in-flight limit allows. */
  sendDue(): void {
    const first = this.sentCount;
    this.publish(Math.min(this.due - this.sentCount, this.inflight - this.outstanding));
    const now = performance.now();
    for (let k = first; k < this.sentCount; k++) this.events.onPacedSent(now - this.scheduledAt!(k));
  }

  close(): void {
    this.closing = true;
    if (this.socket.destroyed) return;
    this.socket.end(Buffer.from([0xe0, 0x00]));
  }

  private onData(chunk: Buffer): void {
    let acks = 0;
    this.pending = splitPackets(this.pending, chunk, (buf, first, i) => {
      const type = first >> 4;
      if (type === PUBACK) {
        const id = buf.readUInt16BE(i);
        this.events.onAck(performance.now() - this.sentAt[id]!);
        acks++;
      } else if (type === CONNACK) {
        this.onConnack(buf[i + 1]!);
      }
    });
    if (acks > 0) {
      this.outstanding -= acks;
      if (!this.paced) this.publish(acks);
      else if (this.due > this.sentCount) this.sendDue();
    }
  }
}

export async function runLoad(settings: LoadSettings, emit: (event: object) => void): Promise<LoadResult> {
  const histogram = latencyHistogram();
  const lag = latencyHistogram();
  let late = 0;
  let measuring = false;
  let acked = 0;
  let totalAcked = 0;
  let sent = 0;
  const tickMs = settings.tickMs ?? 5;
  const events: ConnectionEvents = {
    onAck(latencyMs) {
      totalAcked++;
      if (!measuring) return;
      acked++;
      recordMs(histogram, latencyMs);
    },
    onSent(count) {
      if (measuring) sent += count;
    },
    onPacedSent(behindMs) {
      if (!measuring) return;
      recordMs(lag, Math.max(0, behindMs));
      if (behindMs > 2 * tickMs) late++;
    },
  };

  const storm = await connectAll(settings, events);
  const connections = storm.connections;
  emit({ event: 'connected', at: epochNow(), ms: storm.result.ms });
  if (settings.idleSeconds) await sleep(settings.idleSeconds * 1000);

  emit({ event: 'load', at: epochNow() });
  let onceMs: number | undefined;
  let pacer: NodeJS.Timeout | undefined;
  const window = { from: 0, to: 0 };
  let cpu = { user: 0, system: 0 };
  let elapsed = 0;
  const measure = async (seconds: number, until?: () => boolean) => {
    measuring = true;
    window.from = epochNow();
    emit({ event: 'measuring', at: window.from });
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    const deadline = started + seconds * 1000;
    if (until) while (!until() && performance.now() < deadline) await sleep(5);
    else await sleep(seconds * 1000);
    measuring = false;
    elapsed = (performance.now() - started) / 1000;
    cpu = process.cpuUsage(cpuBefore);
    window.to = epochNow();
    emit({ event: 'measured', at: window.to });
  };

  if (settings.once) {
    const started = performance.now();
    const expected = totalAcked + connections.length * settings.inflight;
    const measured = measure(settings.seconds, () => totalAcked >= expected);
    for (const c of connections) {
      c.paced = true; // no next publish on a PUBACK
      c.publish(settings.inflight);
    }
    await measured;
    if (totalAcked >= expected) onceMs = +(performance.now() - started).toFixed(1);
  } else if (settings.rate !== undefined) {
    // Connection i's k-th publish (0-based) is due at (k + 1 - i/n) / perConnection seconds: the same rate for
    // each, their phases spread evenly over one period.
    const perConnection = settings.rate / connections.length;
    const started = performance.now();
    connections.forEach((c, i) => {
      const phase = i / connections.length;
      c.paced = true;
      c.scheduledAt = (k) => started + ((k + 1 - phase) / perConnection) * 1000;
    });
    const tick = () => {
      const now = performance.now();
      const elapsedS = (now - started) / 1000;
      for (let i = 0; i < connections.length; i++) {
        const c = connections[i]!;
        c.due = Math.floor(elapsedS * perConnection + i / connections.length);
        c.sendDue();
      }
    };
    pacer = setInterval(tick, tickMs);
    await sleep(settings.warmupSeconds * 1000);
    await measure(settings.seconds);
    clearInterval(pacer);
  } else {
    for (const c of connections) c.publish(settings.inflight);
    await sleep(settings.warmupSeconds * 1000);
    await measure(settings.seconds);
  }

  for (const c of connections) c.stopped = true;
  const drainDeadline = Date.now() + 10_000;
  while (connections.some((c) => c.outstanding > 0 && !c.dropped) && Date.now() < drainDeadline) await sleep(20);
  if (settings.holdSeconds) {
    emit({ event: 'holding', at: epochNow() });
    await sleep(settings.holdSeconds * 1000);
  }
  const dropped = connections.filter((c) => c.dropped).length;
  for (const c of connections) c.close();
  if (storm.result.failed > 0 || dropped > 0) {
    process.stderr.write(
      `mqtt-load: ${storm.result.failed} connections failed, ${dropped} dropped: ${JSON.stringify(storm.result.errors)}\n`,
    );
  }
  return {
    acked,
    rate: Math.round(acked / elapsed),
    latencyMs: percentilesMs(histogram),
    totalAcked,
    unanswered: connections.reduce((n, c) => n + c.outstanding, 0),
    cpuSeconds: +((cpu.user + cpu.system) / 1e6).toFixed(2),
    sent,
    sentRate: Math.round(sent / elapsed),
    window,
    connect: storm.result,
    ...(settings.rate !== undefined ? { scheduleLagMs: { ...percentilesMs(lag), late } } : {}),
    ...(onceMs !== undefined ? { onceMs } : {}),
    dropped,
  };
}

/** Opens every connection at once and waits for each CONNACK; failed attempts are retried with a backoff. */
async function connectAll(
  settings: LoadSettings,
  events: ConnectionEvents,
): Promise<{ connections: LoadConnection[]; result: NonNullable<LoadResult['connect']> }> {
  const histogram = latencyHistogram();
  const errors: Record<string, number> = {};
  const retries = settings.connectRetries ?? 2;
  let retried = 0;
  let failed = 0;
  const connectOne = async (i: number): Promise<LoadConnection | undefined> => {
    for (let attempt = 0; ; attempt++) {
      const started = performance.now();
      const socket = connect(settings.port, settings.host);
      // Errors surface through 'close' (and the promises below); this keeps them from being thrown.
      socket.on(
        'error',
        (err: NodeJS.ErrnoException) => (errors[err.code ?? err.message] = (errors[err.code ?? err.message] ?? 0) + 1),
      );
      const timer = setTimeout(() => socket.destroy(new Error('connect timeout')), CONNECT_ATTEMPT_TIMEOUT_MS);
      try {
        await new Promise<void>((resolve, reject) =>
          socket.once('connect', resolve).once('close', () => reject(new Error('no TCP connection'))),
        );
        const connection = new LoadConnection(
          socket,
          `${settings.clientPrefix}${i}`,
          settings.payloadBytes,
          settings.stampPayload ?? false,
          settings.inflight,
          events,
          settings.mqtt5Every && i % settings.mqtt5Every === settings.mqtt5Every - 1 ? 5 : 4,
        );
        await connection.connected;
        recordMs(histogram, performance.now() - started);
        return connection;
      } catch (err: unknown) {
        socket.destroy();
        const message = (err as Error).message;
        if (!message.startsWith('no TCP') && !message.startsWith('closed')) errors[message] = (errors[message] ?? 0) + 1;
        if (attempt >= retries) {
          failed++;
          return undefined;
        }
        retried++;
        await sleep(Math.random() * 200 * 2 ** attempt);
      } finally {
        clearTimeout(timer);
      }
    }
  };
  // With a concurrency limit, `lanes` workers take the next index each; else one attempt per connection at once.
  const lanes = settings.connectConcurrency ? Math.min(settings.connectConcurrency, settings.connections) : settings.connections;
  const all: Array<LoadConnection | undefined> = Array.from({ length: settings.connections });
  let next = 0;
  const lane = async () => {
    while (next < settings.connections) {
      const i = next++;
      all[i] = await connectOne(i);
    }
  };
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  await Promise.all(Array.from({ length: lanes }, lane));
  const ms = +(performance.now() - started).toFixed(1);
  const cpu = process.cpuUsage(cpuBefore);
  const connections = all.filter((c): c is LoadConnection => c !== undefined);
  return {
    connections,
    result: {
      connections: connections.length,
      ms,
      latencyMs: percentilesMs(histogram),
      retried,
      failed,
      errors,
      cpuSeconds: +((cpu.user + cpu.system) / 1e6).toFixed(2),
    },
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
