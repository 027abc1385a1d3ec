/**
 * MQTT 5 on the gateway's MQTT listener, with a real MQTT 5 client (mqtt.js, protocolVersion 5) against the real
 * aedes listener: what the CONNACK announces, each reason code of the refusal table on CONNACK, PUBACK/PUBREC,
 * SUBACK and DISCONNECT, with the connection staying up where MQTT 5 allows it.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { connect as connectSocket } from 'node:net';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type IConnackPacket, type IDisconnectPacket, type MqttClient } from 'mqtt';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { readCloud } from '../support/delivery.ts';
import { makeFleetKeys, type FleetKeys } from '../support/fleet-keys.ts';
import { startInProcess, type InProcessStack } from '../support/in-process.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { waitUntil } from '../support/test-device.ts';

type ReasonError = Error & { code?: number };

/** Connects with MQTT 5 and hands back the CONNACK too. */
async function connect5(port: number, clientId: string, options: Partial<IClientOptions> = {}) {
  const client = mqtt.connect({
    host: '127.0.0.1',
    port,
    clientId,
    protocolVersion: 5,
    reconnectPeriod: 0,
    ...options,
  });
  const connack = await new Promise<IConnackPacket>((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
  });
  return { client, connack };
}

/** The reason code a rejected publish or connect carried. */
const reasonOf = (err: unknown) => (err as ReasonError).code;

describe('mqtt 5', function () {
  this.timeout(20_000);
  const dir = useTempDir();
  let stack: InProcessStack;
  let clients: MqttClient[] = [];

  beforeEach(async () => {
    stack = await startInProcess(dir.path, { maxPayloadBytes: 1024, maxUnackedPerConnection: 100, maxConnections: 5 });
  });
  afterEach(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    clients = [];
    await stack.close();
  });

  const connect = async (clientId: string, options: Partial<IClientOptions> = {}) => {
    const result = await connect5(stack.gateway.mqttAddress.port, clientId, options);
    clients.push(result.client);
    return result;
  };
  const refusals = async () => (await stack.gateway.stats()).ingress.refusals;

  it('mqtt 5 - the CONNACK announces receive maximum, maximum packet size, topic aliases, no shared subscriptions', async () => {
    const { connack } = await connect('dev-a', { properties: { sessionExpiryInterval: 0xffffffff } });
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.properties?.receiveMaximum, 100, '--max-unacked-per-connection');
    assert.equal(connack.properties?.maximumPacketSize, 1024 + 65_536 + 16 + 5, 'from --max-payload-bytes');
    assert.equal(connack.properties?.topicAliasMaximum, 32);
    assert.equal(connack.properties?.sharedSubscriptionAvailable, false);
    // Session expiry "never" is lowered to --max-session-expiry (1 day by default), and the CONNACK says so.
    assert.equal(connack.properties?.sessionExpiryInterval, 86_400);
  });

  it('mqtt 5 - a refused PUBLISH gets its PUBACK reason code and a reason string; the connection stays', async () => {
    const { client } = await connect('dev-a');
    const cases: Array<[topic: string, payload: Buffer | string, code: number, reason: string]> = [
      ['devices/dev-b/telemetry', 'spoofed', 0x87, 'publish-denied'],
      ['factory/line-1', 'x', 0x87, 'publish-denied'],
      ['devices/dev-a/telemetry', Buffer.alloc(1025), 0x97, 'payload-too-large'],
      ['devices/dev-a/telemetry/', 'x', 0x90, 'invalid-stream'],
      ['devices/dev-a/command-results/c-1', 'not json', 0x99, 'invalid-command-result'],
    ];
    for (const [topic, payload, code, reason] of cases) {
      const err = await client.publishAsync(topic, payload, { qos: 1 }).then(
        () => assert.fail(`${topic}: expected a refusal`),
        (e: unknown) => e,
      );
      assert.equal(reasonOf(err), code, `${topic}: ${String(err)}`);
      assert.equal(client.connected, true, `${reason}: the connection stays`);
    }
    await client.publishAsync('devices/dev-a/telemetry', 'fine', { qos: 1 });
    const counted = await refusals();
    assert.equal(counted['publish-denied'], 2);
    assert.equal(counted['payload-too-large'], 1);
    assert.equal(counted['invalid-stream'], 1);
    assert.equal(counted['invalid-command-result'], 1);
    assert.equal((await stack.gateway.stats()).ingress.messages, 1);
  });

  it('mqtt 5 - a QoS 2 PUBLISH refused gets a PUBREC with the reason code; accepted ones complete', async () => {
    const { client } = await connect('dev-a');
    await assert.rejects(client.publishAsync('devices/dev-b/telemetry', 'x', { qos: 2 }), (e: unknown) => reasonOf(e) === 0x87);
    await client.publishAsync('devices/dev-a/telemetry', 'ok', { qos: 2 });
    assert.equal(client.connected, true);
    assert.equal((await stack.gateway.stats()).ingress.messages, 1);
  });

  it('mqtt 5 - PUBACKs, refusals among them, come in the order of the PUBLISHes [MQTT-4.6.0-2]', async () => {
    const { client } = await connect('dev-a');
    const order: string[] = [];
    const sent = ['ok-1', 'bad', 'ok-2', 'bad', 'ok-3'].map((name, i) =>
      client.publishAsync(name === 'bad' ? 'devices/dev-b/telemetry' : 'devices/dev-a/telemetry', name, { qos: 1 }).then(
        () => order.push(`${i}:${name}`),
        () => order.push(`${i}:refused`),
      ),
    );
    await Promise.all(sent);
    assert.deepEqual(order, ['0:ok-1', '1:refused', '2:ok-2', '3:refused', '4:ok-3']);
  });

  it('mqtt 5 - content type and payload format indicator become the record content_type; invalid UTF-8 gets 0x99', async () => {
    const { client } = await connect('dev-a');
    await client.publishAsync('devices/dev-a/telemetry', '{"t":1}', { qos: 1, properties: { contentType: 'application/json' } });
    await client.publishAsync('devices/dev-a/telemetry', 'héllo', { qos: 1, properties: { payloadFormatIndicator: true } });
    await client.publishAsync('devices/dev-a/telemetry', Buffer.from([1, 2]), { qos: 1 });
    await assert.rejects(
      client.publishAsync('devices/dev-a/telemetry', Buffer.from([0xff, 0xfe]), {
        qos: 1,
        properties: { payloadFormatIndicator: true },
      }),
      (e: unknown) => reasonOf(e) === 0x99,
    );
    await assert.rejects(
      client.publishAsync('devices/dev-a/telemetry', 'x', { qos: 1, properties: { contentType: 'a'.repeat(200) } }),
      (e: unknown) => reasonOf(e) === 0x99,
    );
    assert.equal(client.connected, true);
    await waitUntil('three at the cloud', async () => (await stack.cloud.stats()).records === 3);
    assert.deepEqual(
      readCloud(`${dir.path}/cloud`).map((r) => r.contentType),
      ['application/json', 'text/plain; charset=utf-8', ''],
    );
    assert.equal((await refusals())['payload-format-invalid'], 2);
  });

  it('mqtt 5 - SUBACK answers each filter: granted ones their QoS, refused ones 0x87', async () => {
    const { client } = await connect('dev-a');
    const granted = await client.subscribeAsync(['devices/dev-a/commands/#', 'devices/dev-b/secrets'], { qos: 1 }).then(
      (grants) => grants.map((g) => g.qos),
      (err: Error & { packet?: { granted: number[] } }) => err.packet?.granted,
    );
    assert.deepEqual(granted, [1, 0x87]);
    assert.equal(client.connected, true);
  });

  it('mqtt 5 - a topic alias set on one PUBLISH names the topic of the next ones', async () => {
    const { client } = await connect('dev-a');
    await client.publishAsync('devices/dev-a/telemetry/rpm', '1', { qos: 1, properties: { topicAlias: 3 } });
    await client.publishAsync('', '2', { qos: 1, properties: { topicAlias: 3 } });
    await waitUntil('both at the cloud', async () => (await stack.cloud.stats()).records === 2);
    assert.equal((await refusals())['invalid-stream'], 0);
  });

  it('mqtt 5 - the same client id connecting again: the old connection gets DISCONNECT 0x8E', async () => {
    const { client: first } = await connect('dev-a');
    const disconnected = new Promise<IDisconnectPacket>((resolve) => first.once('disconnect', resolve));
    await connect('dev-a');
    assert.equal((await disconnected).reasonCode, 0x8e);
    assert.equal((await stack.gateway.stats()).ingress.disconnects['taken-over'], 1);
  });

  it('mqtt 5 - beyond --max-connections: CONNACK 0x97 quota exceeded, with a reason string', async () => {
    for (let i = 0; i < 5; i++) await connect(`dev-${i}`);
    await assert.rejects(connect('dev-5'), (err: unknown) => reasonOf(err) === 0x97);
    assert.equal((await refusals())['too-many-connections'], 1);
  });

  it('mqtt 5 - an empty client id: an anonymous device gets an assigned id, one asking for a session 0x85', async () => {
    const { client, connack } = await connect('', { clean: true });
    const assigned = String(connack.properties?.assignedClientIdentifier);
    assert.match(assigned, /^aedes_[0-9a-f-]{36}$/);
    await client.publishAsync(`devices/${assigned}/telemetry`, 'x', { qos: 1 });
    assert.equal((await stack.gateway.stats()).ingress.messages, 1);
    await assert.rejects(connect('', { properties: { sessionExpiryInterval: 60 } }), (err: unknown) => reasonOf(err) === 0x85);
  });

  it('mqtt 5 - a client id that is not a device id: CONNACK 0x85', async () => {
    await assert.rejects(connect('has/slash'), (err: unknown) => reasonOf(err) === 0x85);
    await assert.rejects(connect('constructor'), (err: unknown) => reasonOf(err) === 0x85);
  });

  it('mqtt 5 - a packet over the maximum packet size: DISCONNECT 0x95', async () => {
    const socket = connectSocket(stack.gateway.mqttAddress.port, '127.0.0.1');
    const packets: Packet[] = [];
    const parser = mqttPacket.parser({ protocolVersion: 5 });
    parser.on('packet', (p) => packets.push(p));
    socket.on('data', (chunk) => parser.parse(chunk));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(
      mqttPacket.generate(
        { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'dev-a', clean: true, keepalive: 60 },
        { protocolVersion: 5 },
      ),
    );
    await waitUntil('the CONNACK', async () => packets.some((p) => p.cmd === 'connack'));
    socket.write(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x32])); // a PUBLISH announcing 100 MiB
    await closed;
    const disconnect = packets.find((p) => p.cmd === 'disconnect') as { reasonCode?: number } | undefined;
    assert.equal(disconnect?.reasonCode, 0x95);
    assert.equal((await refusals())['packet-too-large'], 1);
  });

  it('mqtt 5 - on shutdown every MQTT 5 client gets DISCONNECT 0x8B', async () => {
    const { client } = await connect('dev-a');
    // aedes handles a connection's packets in turn: a SUBACK means its CONNECT is through, the client registered.
    await client.subscribeAsync('devices/dev-a/x');
    const disconnected = new Promise<IDisconnectPacket>((resolve) => client.once('disconnect', resolve));
    await stack.gateway.close();
    assert.equal((await disconnected).reasonCode, 0x8b);
  });
});

describe('mqtt 5 (journal full)', function () {
  this.timeout(20_000);
  const dir = useTempDir();

  it('mqtt 5 - a full journal under reject-new: PUBACK 0x97, the connection stays, the message can be sent again', async () => {
    const stack = await startInProcess(dir.path, {
      journalLimits: { maxBytes: 3000, maxAgeMs: 0, policy: 'reject-new' },
    });
    const { client } = await connect5(stack.gateway.mqttAddress.port, 'dev-a');
    try {
      await stack.cloud.close(); // nothing is acknowledged upstream: the journal fills
      let refusal: unknown;
      for (let i = 0; i < 10 && refusal === undefined; i++) {
        await client.publishAsync('devices/dev-a/telemetry', Buffer.alloc(1000), { qos: 1 }).catch((e: unknown) => (refusal = e));
      }
      assert.equal(reasonOf(refusal), 0x97);
      assert.equal(client.connected, true);
      assert.ok((await stack.gateway.stats()).ingress.refusals['journal-full'] >= 1);
    } finally {
      await client.endAsync(true);
      await stack.gateway.close();
    }
  });
});

describe('mqtt 5 (tokens)', function () {
  this.timeout(30_000);
  const dir = useTempDir();
  let keys: FleetKeys;
  let stack: InProcessStack;
  let revocations: string;
  let clients: MqttClient[] = [];

  beforeEach(async () => {
    keys = await makeFleetKeys(join(dir.path, 'keys'));
    revocations = join(dir.path, 'revoked.txt');
    writeFileSync(revocations, '');
    stack = await startInProcess(dir.path, {
      allowAnonymous: false,
      deviceKey: { keyFile: keys.publicKeyFile, field: '--device-key' },
      revocationsFile: revocations,
    });
  });
  afterEach(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    clients = [];
    await stack.close();
  });

  const connect = async (clientId: string, password: string | undefined) => {
    const result = await connect5(
      stack.gateway.mqttAddress.port,
      clientId,
      password !== undefined ? { username: clientId, password } : {},
    );
    clients.push(result.client);
    return result;
  };

  it('mqtt 5 - token problems get CONNACK 0x86, a valid token that may not connect 0x87', async () => {
    const other = await makeFleetKeys(join(dir.path, 'other'));
    const now = Math.floor(Date.now() / 1000);
    for (const [password, code] of [
      [undefined, 0x86],
      ['not-a-token', 0x86],
      [await other.device('dev-1'), 0x86],
      [await keys.device('dev-1', { now: now - 7200, ttlSeconds: 3600 }), 0x86],
      [await keys.device('dev-2'), 0x87], // the token's sub is another device
      [await keys.device('dev-1', { audience: 'fleetgate-cloud' }), 0x87],
    ] as const) {
      await assert.rejects(connect('dev-1', password), (err: unknown) => reasonOf(err) === code, String(password));
    }
    const { connack } = await connect('dev-1', await keys.device('dev-1'));
    assert.equal(connack.reasonCode, 0);
  });

  it("mqtt 5 - an empty client id with a token: the device is the token's sub, assigned in the CONNACK", async () => {
    const { client, connack } = await connect('', await keys.device('dev-7'));
    assert.equal(connack.properties?.assignedClientIdentifier, 'dev-7');
    await client.publishAsync('devices/dev-7/telemetry', 'x', { qos: 1 });
    await assert.rejects(client.publishAsync('devices/other/telemetry', 'x', { qos: 1 }), (e: unknown) => reasonOf(e) === 0x87);
  });

  it('mqtt 5 - a token revoked mid-connection: DISCONNECT 0x87 with a reason string', async () => {
    const { client } = await connect('dev-1', await keys.device('dev-1'));
    const disconnected = new Promise<IDisconnectPacket>((resolve) => client.once('disconnect', resolve));
    writeFileSync(revocations, 'sub:dev-1\n');
    const packet = await disconnected;
    assert.equal(packet.reasonCode, 0x87);
    assert.match(String(packet.properties?.reasonString), /revoked/);
  });

  it('mqtt 5 - a token that expires mid-connection: DISCONNECT 0x87', async () => {
    const { client } = await connect('dev-1', await keys.device('dev-1', { ttlSeconds: 2 }));
    const packet = await new Promise<IDisconnectPacket>((resolve) => client.once('disconnect', resolve));
    assert.equal(packet.reasonCode, 0x87);
    assert.match(String(packet.properties?.reasonString), /expired/);
  });
});

describe('mqtt sessions', function () {
  this.timeout(20_000);
  const dir = useTempDir();
  let stack: InProcessStack;
  let clients: MqttClient[] = [];

  beforeEach(async () => {
    const acl = join(dir.path, 'acl.yaml');
    writeFileSync(
      acl,
      'rules:\n  - allow: [publish, subscribe]\n    topic: devices/{deviceId}/#\n  - allow: publish\n    topic: devices/+/inbox\n',
    );
    stack = await startInProcess(dir.path, { aclFile: acl });
  });
  afterEach(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    clients = [];
    await stack.close();
  });

  for (const protocolVersion of [4, 5] as const) {
    it(`sessions - MQTT ${protocolVersion === 5 ? '5' : '3.1.1'}: a persistent session keeps its subscriptions and queued QoS 1 messages across a reconnect`, async () => {
      const persistent: Partial<IClientOptions> =
        protocolVersion === 5 ? { clean: false, properties: { sessionExpiryInterval: 300 } } : { clean: false };
      const port = stack.gateway.mqttAddress.port;
      const { client: first } = await connect5(port, 'dev-a', { protocolVersion, ...persistent });
      await first.subscribeAsync('devices/dev-a/inbox', { qos: 1 });
      await first.endAsync();
      const { client: sender } = await connect5(port, 'dev-b', { protocolVersion });
      clients.push(sender);
      await sender.publishAsync('devices/dev-a/inbox', 'while away', { qos: 1 });
      const again = mqtt.connect({
        host: '127.0.0.1',
        port,
        clientId: 'dev-a',
        protocolVersion,
        reconnectPeriod: 0,
        ...persistent,
      });
      clients.push(again);
      const message = new Promise<string>((resolve) => again.once('message', (_t, payload) => resolve(payload.toString())));
      const connack = await new Promise<IConnackPacket>((resolve) => again.once('connect', resolve));
      assert.equal(connack.sessionPresent, true);
      assert.equal(await message, 'while away');
    });
  }
});
