/**
 * Beyond telemetry the listener is a full MQTT 3.1.1 broker for what the ACL allows: retained messages, wills,
 * QoS 2 and local publish/subscribe between devices, as the spec's normative statements require.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { connect as connectSocket, type Socket } from 'node:net';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { startInProcess, type InProcessStack } from '../support/in-process.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { waitUntil } from '../support/test-device.ts';

describe('broker', function () {
  this.timeout(20_000);
  const dir = useTempDir();
  let stack: InProcessStack;
  let clients: MqttClient[] = [];

  beforeEach(async () => {
    const acl = join(dir.path, 'acl.yaml');
    writeFileSync(
      acl,
      'rules:\n  - allow: [publish, subscribe]\n    topic: devices/{deviceId}/#\n  - allow: subscribe\n    topic: devices/+/status\n',
    );
    stack = await startInProcess(dir.path, { aclFile: acl });
  });
  afterEach(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    clients = [];
    await stack.close();
  });

  const connect = async (clientId: string, options: Partial<IClientOptions> = {}) => {
    const client = await mqtt.connectAsync({
      host: '127.0.0.1',
      port: stack.gateway.mqttAddress.port,
      clientId,
      reconnectPeriod: 0,
      ...options,
    });
    clients.push(client);
    return client;
  };
  /** The next message `client` receives, as [topic, payload, retain]. */
  const nextMessage = (client: MqttClient) =>
    new Promise<[string, string, boolean]>((resolve) =>
      client.once('message', (topic, payload, packet) => resolve([topic, payload.toString(), packet.retain])),
    );

  it('broker - devices publish and subscribe to each other where the ACL allows, at QoS 1', async () => {
    const a = await connect('dev-a');
    const b = await connect('dev-b');
    await b.subscribeAsync('devices/+/status', { qos: 1 });
    const received = nextMessage(b);
    await a.publishAsync('devices/dev-a/status', 'busy', { qos: 1 });
    assert.deepEqual(await received, ['devices/dev-a/status', 'busy', false]);
    assert.equal((await stack.gateway.stats()).journal.lastSeq, 0, 'status is local traffic, not telemetry');
  });

  it('broker - a retained message goes to later subscribers with RETAIN set [MQTT-3.3.1-6], and an empty one clears it [MQTT-3.3.1-10]', async () => {
    const a = await connect('dev-a');
    await a.publishAsync('devices/dev-a/status', 'online', { qos: 1, retain: true });
    const b = await connect('dev-b');
    const retained = nextMessage(b);
    await b.subscribeAsync('devices/dev-a/status', { qos: 1 });
    assert.deepEqual(await retained, ['devices/dev-a/status', 'online', true]);
    await a.publishAsync('devices/dev-a/status', '', { qos: 1, retain: true });
    const c = await connect('dev-c');
    await c.subscribeAsync('devices/dev-a/status', { qos: 1 });
    const marker = nextMessage(c);
    await a.publishAsync('devices/dev-a/status', 'marker', { qos: 1 });
    assert.deepEqual(await marker, ['devices/dev-a/status', 'marker', false], 'no retained message was left to deliver first');
  });

  it('broker - a will is published when a connection drops [MQTT-3.1.2-8], not after a DISCONNECT [MQTT-3.1.2-10]', async () => {
    const watcher = await connect('dev-w');
    await watcher.subscribeAsync('devices/+/status', { qos: 1 });
    const seen: string[] = [];
    watcher.on('message', (_topic, payload) => seen.push(payload.toString()));
    const polite = await connect('dev-p', {
      will: { topic: 'devices/dev-p/status', payload: Buffer.from('p-gone'), qos: 1, retain: false },
    });
    await polite.endAsync();
    const dropped = await connect('dev-d', {
      will: { topic: 'devices/dev-d/status', payload: Buffer.from('d-gone'), qos: 1, retain: false },
    });
    dropped.stream.destroy();
    await waitUntil('the will of the dropped device', () => seen.includes('d-gone'));
    const marker = await connect('dev-m');
    await marker.publishAsync('devices/dev-m/status', 'marker', { qos: 1 });
    await waitUntil('the marker', () => seen.includes('marker'));
    assert.deepEqual(
      seen.filter((m) => m !== 'marker'),
      ['d-gone'],
    );
  });

  it('broker - a will on a topic the ACL forbids is not published', async () => {
    const watcher = await connect('dev-w');
    await watcher.subscribeAsync('devices/+/status', { qos: 1 });
    const seen: string[] = [];
    watcher.on('message', (_topic, payload) => seen.push(payload.toString()));
    const rogue = await connect('dev-r', {
      will: { topic: 'devices/dev-w/status', payload: Buffer.from('spoofed'), qos: 0, retain: false },
    });
    rogue.stream.destroy();
    const marker = await connect('dev-m');
    await marker.publishAsync('devices/dev-m/status', 'marker', { qos: 1 });
    await waitUntil('the marker', () => seen.includes('marker'));
    assert.deepEqual(seen, ['marker']);
  });

  it('broker - QoS 2 telemetry retransmitted with DUP before PUBREL is journaled once [MQTT-4.3.3-2]', async () => {
    const socket = connectSocket(stack.gateway.mqttAddress.port, '127.0.0.1');
    await once(socket, 'connect');
    const packets = readPackets(socket);
    socket.write(
      mqttPacket.generate({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clientId: 'dev-q',
        clean: true,
        keepalive: 60,
      }),
    );
    assert.equal((await packets.next()).cmd, 'connack');
    const publish = {
      cmd: 'publish',
      topic: 'devices/dev-q/telemetry',
      payload: Buffer.from('exactly once'),
      qos: 2,
      messageId: 7,
      retain: false,
    } as const;
    socket.write(mqttPacket.generate({ ...publish, dup: false }));
    assert.deepEqual(pick(await packets.next()), { cmd: 'pubrec', messageId: 7 });
    socket.write(mqttPacket.generate({ ...publish, dup: true }));
    assert.deepEqual(pick(await packets.next()), { cmd: 'pubrec', messageId: 7 });
    socket.write(mqttPacket.generate({ cmd: 'pubrel', messageId: 7 }));
    assert.deepEqual(pick(await packets.next()), { cmd: 'pubcomp', messageId: 7 });
    socket.destroy();
    const { journal, ingress } = await stack.gateway.stats();
    assert.equal(journal.lastSeq, 1);
    assert.equal(ingress.qos2, 1);
  });
});

function pick(packet: Packet): { cmd: string; messageId?: number } {
  return { cmd: packet.cmd, messageId: (packet as { messageId?: number }).messageId };
}

/** The packets a raw MQTT socket receives, one at a time. */
function readPackets(socket: Socket): { next(): Promise<Packet> } {
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const queue: Packet[] = [];
  const waiting: Array<(p: Packet) => void> = [];
  parser.on('packet', (packet: Packet) => (waiting.length > 0 ? waiting.shift()!(packet) : queue.push(packet)));
  socket.on('data', (chunk: Buffer) => parser.parse(chunk));
  return { next: () => (queue.length > 0 ? Promise.resolve(queue.shift()!) : new Promise((resolve) => waiting.push(resolve))) };
}
