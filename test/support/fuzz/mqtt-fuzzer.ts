/**
 * Sends malformed and mutated MQTT packets to a broker: valid packets made with mqtt-packet, then mutated
 * (bits flipped, bytes overwritten, truncated, padded, duplicated, replaced by noise), plus corrupted fixed
 * headers (packet types, remaining lengths). Most connections start with a valid CONNECT so that the mutations
 * reach the code behind it; some send a mutated CONNECT, some pure noise.
 */
import { connect, type Socket } from 'node:net';
import mqttPacket from 'mqtt-packet';
import { Random } from './random.ts';

export interface MqttFuzzOptions {
  port: number;
  /** Packets to send in all. */
  packets: number;
  /** Connections open at once. */
  concurrency: number;
  random: Random;
}

export interface MqttFuzzResult {
  packets: number;
  connections: number;
  /** Connections the broker closed (most should be: they sent garbage). */
  closedByBroker: number;
}

function corpus(clientId: string): Buffer[] {
  const g = (packet: Record<string, unknown>) => mqttPacket.generate(packet as unknown as mqttPacket.Packet);
  const own = `devices/${clientId}/telemetry`;
  return [
    g({ cmd: 'publish', topic: own, payload: Buffer.from('fuzz'), qos: 0, retain: false, dup: false }),
    g({ cmd: 'publish', topic: `${own}/stream`, payload: Buffer.alloc(300, 1), qos: 1, messageId: 1, retain: false, dup: false }),
    g({ cmd: 'publish', topic: own, payload: Buffer.from('two'), qos: 2, messageId: 2, retain: false, dup: false }),
    g({
      cmd: 'publish',
      topic: 'devices/other/telemetry',
      payload: Buffer.from('x'),
      qos: 1,
      messageId: 3,
      retain: true,
      dup: false,
    }),
    g({ cmd: 'publish', topic: '$SYS/broker/x', payload: Buffer.from('x'), qos: 0, retain: false, dup: false }),
    g({
      cmd: 'subscribe',
      messageId: 4,
      subscriptions: [
        { topic: `devices/${clientId}/#`, qos: 1 },
        { topic: '#', qos: 2 },
      ],
    }),
    g({ cmd: 'unsubscribe', messageId: 5, unsubscriptions: ['#', `devices/${clientId}/x`] }),
    g({ cmd: 'puback', messageId: 6 }),
    g({ cmd: 'pubrec', messageId: 7 }),
    g({ cmd: 'pubrel', messageId: 2 }),
    g({ cmd: 'pubcomp', messageId: 8 }),
    g({ cmd: 'pingreq' }),
    g({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean: true, keepalive: 10 }),
    g({ cmd: 'disconnect' }),
  ];
}

function connectPacket(clientId: string, random: Random): Buffer {
  return mqttPacket.generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clientId,
    clean: random.next() < 0.8,
    keepalive: random.int(120),
    ...(random.next() < 0.2 ? { username: 'u', password: random.bytes(random.int(40)) } : {}),
    ...(random.next() < 0.2
      ? { will: { topic: `devices/${clientId}/status`, payload: Buffer.from('gone'), qos: 1, retain: false } }
      : {}),
  } as mqttPacket.IConnectPacket);
}

/** A mutated packet: a mutation of a valid one, or a valid one under a corrupted fixed header. */
function fuzzPacket(valid: readonly Buffer[], random: Random): Buffer {
  const base = random.pick(valid);
  if (random.next() < 0.3) {
    const header = Buffer.from(base.subarray(0, 1));
    header[0] = random.next() < 0.5 ? (random.int(16) << 4) | (header[0]! & 0x0f) : random.int(256);
    const length = random.pick([0, 1, 2, 127, 128, 16_383, 16_384, 2_097_151, 268_435_455, random.int(1 << 20)]);
    const varint: number[] = [];
    let rest = length;
    do {
      let byte = rest % 128;
      rest = Math.floor(rest / 128);
      if (rest > 0) byte |= 0x80;
      varint.push(byte);
    } while (rest > 0);
    return Buffer.concat([header, Buffer.from(varint), base.subarray(2)]);
  }
  return random.mutate(base);
}

export async function fuzzMqtt({ port, packets, concurrency, random }: MqttFuzzOptions): Promise<MqttFuzzResult> {
  const result: MqttFuzzResult = { packets: 0, connections: 0, closedByBroker: 0 };
  const one = async (n: number) => {
    const clientId = `fuzz-${n}`;
    const valid = corpus(clientId);
    const frames: Buffer[] = [];
    const kind = random.next();
    if (kind < 0.75) frames.push(connectPacket(clientId, random));
    else if (kind < 0.9) frames.push(random.mutate(connectPacket(clientId, random)));
    for (let i = 5 + random.int(50); i > 0; i--)
      frames.push(kind < 0.95 ? fuzzPacket(valid, random) : random.bytes(1 + random.int(200)));
    result.packets += frames.length;
    result.connections++;
    if (await send(port, frames, random)) result.closedByBroker++;
  };
  let next = 0;
  const workers = Array.from({ length: concurrency }, async () => {
    while (result.packets < packets) await one(next++);
  });
  await Promise.all(workers);
  return result;
}

/** Writes the frames (in one or a few writes) and waits for the broker to close, or 300 ms of quiet. */
function send(port: number, frames: Buffer[], random: Random): Promise<boolean> {
  return new Promise((resolve) => {
    const socket: Socket = connect(port, '127.0.0.1');
    let closedByBroker = false;
    let idle: NodeJS.Timeout | undefined;
    const finish = () => {
      clearTimeout(idle);
      socket.destroy();
      resolve(closedByBroker);
    };
    const quiet = () => {
      clearTimeout(idle);
      idle = setTimeout(finish, 300);
    };
    socket.on('error', () => {});
    socket.on('data', quiet);
    socket.on('end', () => (closedByBroker = true));
    socket.on('close', finish);
    socket.on('connect', () => {
      const cut = 1 + random.int(3);
      const size = Math.ceil(frames.length / cut);
      for (let i = 0; i < frames.length; i += size) socket.write(Buffer.concat(frames.slice(i, i + size)));
      quiet();
    });
  });
}
