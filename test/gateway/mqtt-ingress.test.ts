/** MQTT ingress against a real aedes listener: who may publish what, and the precise refusals. */
import assert from 'node:assert/strict';
import { connect as connectSocket } from 'node:net';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { readCloud } from '../support/delivery.ts';
import { startInProcess, type InProcessStack } from '../support/in-process.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { waitUntil } from '../support/test-device.ts';

describe('mqtt ingress', function () {
  this.timeout(20_000);
  const dir = useTempDir();
  let stack: InProcessStack;
  let clients: MqttClient[] = [];

  beforeEach(async () => {
    stack = await startInProcess(dir.path, { maxPayloadBytes: 1024, maxUnackedPerConnection: 100 });
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
  const refusals = async () => (await stack.gateway.stats()).ingress.refusals;

  /** Publishes and expects the gateway to close the connection instead of acknowledging. */
  const expectClosedBy = async (client: MqttClient, topic: string, payload: string | Buffer) => {
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    let acked = false;
    client.publish(topic, payload, { qos: 1 }, (err) => (acked = !err));
    await closed;
    assert.equal(acked, false, 'no PUBACK for a refused publish');
  };

  it("ingress - a publish on another device's topic closes that connection, is counted, and disturbs no one else", async () => {
    const intruder = await connect('dev-a');
    const bystander = await connect('dev-b');
    await expectClosedBy(intruder, 'devices/dev-b/telemetry', 'spoofed');
    await bystander.publishAsync('devices/dev-b/telemetry', 'genuine', { qos: 1 });
    assert.equal((await refusals())['publish-denied'], 1);
    await waitUntil('the genuine message at the cloud', async () => (await stack.cloud.stats()).records === 1);
    assert.deepEqual(
      readCloud(`${dir.path}/cloud`).map((r) => [r.deviceId, Buffer.from(r.payload, 'base64').toString()]),
      [['dev-b', 'genuine']],
    );
  });

  it('ingress - topics outside devices/ are refused the same way', async () => {
    const client = await connect('dev-a');
    await expectClosedBy(client, 'factory/line-1/temperature', '21');
    assert.equal((await refusals())['publish-denied'], 1);
  });

  it('ingress - a payload over the limit is refused and counted', async () => {
    const client = await connect('dev-a');
    await client.publishAsync('devices/dev-a/telemetry', Buffer.alloc(1024), { qos: 1 });
    await expectClosedBy(client, 'devices/dev-a/telemetry', Buffer.alloc(1025));
    assert.equal((await refusals())['payload-too-large'], 1);
  });

  it('ingress - a packet announcing more than the limit is refused at its header, its body never buffered', async () => {
    const socket = connectSocket(stack.gateway.mqttAddress.port);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(
      mqttPacket.generate({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clientId: 'dev-a',
        clean: true,
        keepalive: 60,
      }),
    );
    // A PUBLISH whose fixed header announces 100 MiB; the body never comes.
    socket.write(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x32]));
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    assert.equal((await refusals())['packet-too-large'], 1);
  });

  it('ingress - an empty stream level in a telemetry topic is refused', async () => {
    const client = await connect('dev-a');
    await expectClosedBy(client, 'devices/dev-a/telemetry/', 'x');
    assert.equal((await refusals())['invalid-stream'], 1);
  });

  it('ingress - a subscription nothing of which may be delivered gets SUBACK 0x80; a broad one is granted and filtered at delivery', async () => {
    const client = await connect('dev-a');
    // mqtt.js rejects a subscribe with any 0x80 in its SUBACK; the SUBACK itself comes with the error.
    const suback = await client.subscribeAsync(['devices/dev-a/commands/#', 'devices/dev-b/#', '#'], { qos: 1 }).then(
      () => assert.fail('expected a SUBACK with refusals'),
      (err: Error & { packet?: { granted: number[] } }) => err.packet,
    );
    assert.deepEqual(suback?.granted, [1, 0x80, 1]);
    assert.equal(client.connected, true, 'a refused subscription keeps the connection');
    assert.equal((await refusals())['subscribe-denied'], 1);
    // Through '#' it receives its own space only: another device's message is filtered at delivery.
    const other = await connect('dev-b');
    const received: string[] = [];
    client.on('message', (topic) => received.push(topic));
    await other.publishAsync('devices/dev-b/echo', 'not for dev-a', { qos: 1 });
    await client.publishAsync('devices/dev-a/echo', 'mine', { qos: 1 });
    await waitUntil('its own message', async () => received.includes('devices/dev-a/echo'));
    assert.deepEqual(received, ['devices/dev-a/echo']);
  });

  it('ingress - a client id that cannot be a device id gets CONNACK 0x02, identifier rejected', async () => {
    // (An empty one with clean session 0 [MQTT-3.1.3-8]: mqtt.js will not send it; aedes refuses it with 0x02, and
    // MQTT 5's case is in mqtt5.test.ts.)
    for (const clientId of ['has/slash', 'x'.repeat(129)]) {
      await assert.rejects(connect(clientId, { clean: true }), (err: Error & { code?: number }) => err.code === 2, clientId);
    }
    assert.equal((await refusals())['identifier-rejected'], 2);
  });

  it('ingress - the device-id alphabet: what MQTT allows but / + # and control characters; a space is fine', async () => {
    const client = await connect('clean retained');
    await client.publishAsync('devices/clean retained/telemetry', 'x', { qos: 1 });
    const unicode = await connect('capteur-été:1');
    await unicode.publishAsync('devices/capteur-été:1/telemetry', 'y', { qos: 1 });
    await waitUntil('both at the cloud', async () => (await stack.cloud.stats()).records === 2);
    assert.deepEqual(
      readCloud(`${dir.path}/cloud`).map((r) => r.deviceId),
      ['clean retained', 'capteur-été:1'],
    );
    for (const clientId of ['a+b', 'a#', 'tab\there', 'nul\u0000']) {
      await assert.rejects(connect(clientId), (err: Error & { code?: number }) => err.code === 2, JSON.stringify(clientId));
    }
  });

  it('ingress - an empty client id with a clean session gets a unique id assigned [MQTT-3.1.3-6]', async () => {
    const client = await connect('', { clean: true });
    // An MQTT 3.1.1 client is not told its id; it may still publish in plain MQTT where the rules allow.
    assert.equal(client.connected, true);
    assert.equal((await stack.gateway.stats()).devicesConnected, 1);
  });

  it('ingress - MQTT 5, 3.1.1 and 3.1 CONNECTs are accepted on the same listener', async () => {
    for (const protocolVersion of [5, 4, 3] as const) {
      const client = await connect(`dev-v${protocolVersion}`, { protocolVersion });
      await client.publishAsync(`devices/dev-v${protocolVersion}/telemetry`, 'x', { qos: 1 });
    }
    assert.equal((await stack.gateway.stats()).ingress.messages, 3);
    assert.equal((await refusals())['unsupported-protocol-version'], 0);
  });

  it("ingress - a device's own non-telemetry topics are plain MQTT: delivered, not journaled", async () => {
    const client = await connect('dev-a');
    await client.subscribeAsync('devices/dev-a/echo', { qos: 1 });
    const received = new Promise<[string, Buffer]>((resolve) =>
      client.once('message', (topic, payload) => resolve([topic, payload])),
    );
    await client.publishAsync('devices/dev-a/echo', 'ping', { qos: 1 });
    const [topic, payload] = await received;
    assert.deepEqual([topic, payload.toString()], ['devices/dev-a/echo', 'ping']);
    const { ingress, journal } = await stack.gateway.stats();
    assert.equal(ingress.localMessages, 1);
    assert.equal(ingress.messages, 0);
    assert.equal(journal.lastSeq, 0);
  });

  it('ingress - QoS 0 and named streams are journaled and reach the cloud', async () => {
    const client = await connect('dev-a');
    await client.publishAsync('devices/dev-a/telemetry/vibration', 'v1', { qos: 0 });
    await client.publishAsync('devices/dev-a/telemetry', 't1', { qos: 1 });
    await waitUntil('both at the cloud', async () => (await stack.cloud.stats()).records === 2);
    const records = readCloud(`${dir.path}/cloud`);
    assert.deepEqual(
      records.map((r) => [r.stream, Buffer.from(r.payload, 'base64').toString()]),
      [
        ['vibration', 'v1'],
        ['', 't1'],
      ],
    );
    assert.ok(records.every((r) => r.gatewayTime > 0 && r.deviceId === 'dev-a'));
    const { ingress } = await stack.gateway.stats();
    assert.deepEqual([ingress.qos0, ingress.qos1, ingress.messages], [1, 1, 2]);
  });

  it('ingress - a device that floods QoS 1 is held back, yet every PUBACK comes, in publish order, for a journaled message', async () => {
    const client = await connect('dev-a');
    const order: number[] = [];
    // mqtt.js sends all 5,000 at once: far more than a connection may have unacknowledged here (100).
    await Promise.all(
      Array.from({ length: 5000 }, (_, n) =>
        client.publishAsync('devices/dev-a/telemetry', `dev-a:${n}`, { qos: 1 }).then(() => void order.push(n)),
      ),
    );
    assert.deepEqual(
      order,
      Array.from({ length: 5000 }, (_, n) => n),
      'PUBACKs in publish order [MQTT-4.6.0-2]',
    );
    const { ingress, journal } = await stack.gateway.stats();
    assert.ok(ingress.heldForBackpressure > 0, 'the flood was held back at least once');
    assert.ok(journal.lastSeq === 5000, 'every acknowledged message is in the journal');
    await waitUntil('all at the cloud', async () => (await stack.cloud.stats()).records === 5000);
    const payloads = readCloud(`${dir.path}/cloud`).map((r) => Buffer.from(r.payload, 'base64').toString());
    assert.deepEqual(
      payloads,
      Array.from({ length: 5000 }, (_, n) => `dev-a:${n}`),
    );
  });

  it('ingress - QoS 2 telemetry is journaled once and completes its PUBREC/PUBREL/PUBCOMP exchange', async () => {
    const client = await connect('dev-a');
    await client.publishAsync('devices/dev-a/telemetry', 'exactly-once', { qos: 2 });
    await waitUntil('at the cloud', async () => (await stack.cloud.stats()).records === 1);
    assert.equal((await stack.gateway.stats()).ingress.qos2, 1);
  });

  it('ingress - the admin API answers /healthz and /v1/stats, and 404 for the rest', async () => {
    const admin = `http://127.0.0.1:${stack.gateway.adminAddress!.port}`;
    await connect('dev-a');
    assert.deepEqual(await (await fetch(`${admin}/healthz`)).json(), { status: 'ok' });
    const stats = (await (await fetch(`${admin}/v1/stats`)).json()) as Record<string, unknown>;
    assert.equal(stats.devicesConnected, 1);
    for (const key of ['gatewayId', 'journal', 'upstreams', 'dataAtRisk', 'ingress']) assert.ok(key in stats, key);
    assert.equal((await fetch(`${admin}/nope`)).status, 404);
  });
});
