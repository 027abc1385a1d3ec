/**
 * Identity and access with real sockets: device tokens on MQTT (each refusal its CONNACK code), tokens that
 * expire or are revoked during a connection, gateway tokens on the uplink, and the limits.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { GATEWAY_AUDIENCE, loadVerifyingKey, RevocationList, TokenVerifier } from '@fleetgate/common';
import { TokenGatewayAuth } from '@fleetgate/cloud-stub';
import { killAll } from '../support/fleetgate-process.ts';
import { makeFleetKeys, type FleetKeys } from '../support/fleet-keys.ts';
import { Stack } from '../support/stack.ts';
import { startInProcess, type InProcessStack } from '../support/in-process.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { waitUntil } from '../support/test-device.ts';
import { DEFAULT_UPLINK_SETTINGS } from '../../gateway/src/uplink/uplink.ts';
import { RawUplink, status } from '../support/uplink-client.ts';

describe('identity (MQTT)', function () {
  this.timeout(30_000);
  const dir = useTempDir();
  let keys: FleetKeys;
  let stack: InProcessStack;
  let clients: MqttClient[] = [];
  let revocations: string;

  beforeEach(async () => {
    keys = await makeFleetKeys(join(dir.path, 'keys'));
    revocations = join(dir.path, 'revoked.txt');
    writeFileSync(revocations, '');
    stack = await startInProcess(dir.path, {
      allowAnonymous: false,
      deviceKey: { keyFile: keys.publicKeyFile, field: '--device-key' },
      revocationsFile: revocations,
      maxConnections: 3,
    });
  });
  afterEach(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    clients = [];
    await stack.close();
  });

  const connect = async (clientId: string, password: string | undefined, options: Partial<IClientOptions> = {}) => {
    const client = await mqtt.connectAsync({
      host: '127.0.0.1',
      port: stack.gateway.mqttAddress.port,
      clientId,
      reconnectPeriod: 0,
      protocolVersion: 4,
      ...(password !== undefined ? { username: clientId, password } : {}),
      ...options,
    });
    clients.push(client);
    return client;
  };
  const stats = async () => (await stack.gateway.stats()).ingress;
  const refusedWith = async (code: number, clientId: string, password: string | undefined) =>
    assert.rejects(connect(clientId, password), (err: Error & { code?: number }) => {
      assert.equal(err.code, code, `${clientId}: ${err.message}`);
      return true;
    });

  it('identity - a device with a valid token connects, publishes, and its data arrives', async () => {
    const client = await connect('dev-1', await keys.device('dev-1'));
    await client.publishAsync('devices/dev-1/telemetry', 'hello', { qos: 1 });
    await waitUntil('at the cloud', async () => (await stack.cloud.stats()).records === 1);
    assert.equal((await stats()).auth, 'token');
  });

  it('identity - every bad credential gets its CONNACK code and is counted by reason', async () => {
    const other = await makeFleetKeys(join(dir.path, 'other'));
    const valid = await keys.device('dev-1');
    const { jti } = JSON.parse(Buffer.from(valid.split('.')[1]!, 'base64url').toString()) as { jti: string };
    writeFileSync(revocations, `jti:${jti}\n`);
    await waitUntil('the revocation list re-read', async () => {
      try {
        await connect('dev-1', valid);
        return false;
      } catch {
        return true;
      }
    });
    const now = Math.floor(Date.now() / 1000);
    await refusedWith(4, 'dev-2', undefined); // no token
    await refusedWith(4, 'dev-2', 'not-a-token'); // malformed
    await refusedWith(4, 'dev-2', await other.device('dev-2')); // signed by another key
    await refusedWith(4, 'dev-2', await keys.device('dev-2', { now: now - 7200, ttlSeconds: 3600 })); // expired
    await refusedWith(5, 'dev-1', valid); // revoked
    await refusedWith(5, 'dev-2', await keys.device('dev-2', { audience: GATEWAY_AUDIENCE })); // wrong audience
    await refusedWith(5, 'dev-3', await keys.device('dev-2')); // client id is not the token's sub
    await refusedWith(2, 'bad/id', await keys.device('dev-2')); // client id cannot be a device id
    const refusals = (await stats()).refusals;
    for (const reason of [
      'token-missing',
      'token-malformed',
      'token-bad-signature',
      'token-expired',
      'token-wrong-audience',
      'client-id-mismatch',
      'identifier-rejected',
    ] as const) {
      assert.equal(refusals[reason], 1, reason);
    }
    assert.ok(refusals['token-revoked'] >= 1);
  });

  it('identity - a token that expires during a connection ends it; a fresh token works', async () => {
    const client = await connect('dev-1', await keys.device('dev-1', { ttlSeconds: 2 }));
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    await closed;
    assert.equal((await stats()).disconnects['token-expired'], 1);
    const again = await connect('dev-1', await keys.device('dev-1'));
    await again.publishAsync('devices/dev-1/telemetry', 'fresh', { qos: 1 });
  });

  it("identity - revoking a connected device's token ends its connection", async () => {
    const client = await connect('dev-1', await keys.device('dev-1'));
    const bystander = await connect('dev-2', await keys.device('dev-2'));
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    writeFileSync(revocations, 'sub:dev-1\n');
    await closed;
    assert.equal((await stats()).disconnects['token-revoked'], 1);
    assert.equal(bystander.connected, true);
  });

  it('identity - beyond --max-connections the next device gets CONNACK 0x03; the same id takes over its old connection', async () => {
    const first = await connect('dev-1', await keys.device('dev-1'));
    await connect('dev-2', await keys.device('dev-2'));
    await connect('dev-3', await keys.device('dev-3'));
    await refusedWith(3, 'dev-4', await keys.device('dev-4'));
    assert.equal((await stats()).refusals['too-many-connections'], 1);
    const firstClosed = new Promise<void>((resolve) => first.once('close', () => resolve()));
    const takeover = await connect('dev-1', await keys.device('dev-1'));
    await firstClosed;
    assert.equal(takeover.connected, true, 'a second connection with the same id takes over [MQTT-3.1.4-2]');
    assert.equal((await stats()).disconnects['taken-over'], 1);
  });
});

describe('identity (logs)', function () {
  this.timeout(60_000);
  const dir = useTempDir();
  afterEach(() => killAll());

  it('identity - tokens and key material never appear in the logs, even at debug level', async () => {
    const keys = await makeFleetKeys(join(dir.path, 'keys'));
    const tokenFile = join(dir.path, 'gw.token');
    const gatewayToken = await keys.gateway('gw-test');
    writeFileSync(tokenFile, gatewayToken);
    const debug = ['--log-level', 'debug'];
    const stack = await Stack.start(dir.path, debug, {
      cloud: ['--gateway-key', keys.publicKeyFile, ...debug],
      gateway: ['--device-key', keys.publicKeyFile, '--token-file', tokenFile],
    });
    const secrets = [
      gatewayToken,
      await keys.device('dev-1'),
      await keys.device('dev-1', { audience: 'wrong' }),
      'not-a-token-but-a-secret-password',
    ];
    for (const password of secrets.slice(1)) {
      const client = mqtt.connect({
        host: '127.0.0.1',
        port: stack.mqttPort,
        clientId: 'dev-1',
        username: 'dev-1',
        password,
        reconnectPeriod: 0,
      });
      await new Promise<void>((resolve) => {
        client.once(
          'connect',
          () =>
            void client.publishAsync('devices/dev-1/telemetry', 'x', { qos: 1 }).then(() => client.end(true, () => resolve())),
        );
        client.once('error', () => client.end(true, () => resolve()));
      });
    }
    await waitUntil("the valid device's message at the cloud", async () => (await stack.cloudStats()).records === 1);
    const output = [...stack.gateway.lines, ...stack.cloud.lines].join('\n');
    assert.match(output, /connection refused/, 'the refusals were logged');
    const privateKey = readFileSync(keys.privateKeyFile, 'utf8');
    for (const secret of [...secrets, ...secrets.map((t) => t.split('.')[2] ?? t), privateKey.split('\n')[1]!]) {
      assert.ok(!output.includes(secret), `a secret appeared in the logs: ${secret.slice(0, 12)}...`);
    }
  });
});

describe('limits', function () {
  this.timeout(20_000);
  const dir = useTempDir();
  let stack: InProcessStack;
  beforeEach(async () => {
    stack = await startInProcess(dir.path, { rateLimit: { perSecond: 50, burst: 10 } });
  });
  afterEach(() => stack.close());

  it('limits - a device over its rate is slowed down, not refused: every message arrives, later', async () => {
    const client = await mqtt.connectAsync({
      host: '127.0.0.1',
      port: stack.gateway.mqttAddress.port,
      clientId: 'dev-1',
      reconnectPeriod: 0,
    });
    const started = Date.now();
    await Promise.all(Array.from({ length: 60 }, (_, i) => client.publishAsync('devices/dev-1/telemetry', `m${i}`, { qos: 1 })));
    const elapsed = Date.now() - started;
    await client.endAsync();
    // 10 at once, then 50 at 50/s: about a second.
    assert.ok(elapsed >= 900, `60 messages took ${elapsed} ms`);
    const { ingress, journal } = await stack.gateway.stats();
    assert.equal(journal.lastSeq, 60);
    assert.ok(ingress.rateLimited >= 40, `rate-limited ${ingress.rateLimited}`);
  });
});

describe('identity (uplink)', function () {
  this.timeout(30_000);
  const dir = useTempDir();
  let keys: FleetKeys;
  let stack: InProcessStack | undefined;
  let streams: RawUplink[] = [];

  beforeEach(async () => {
    keys = await makeFleetKeys(join(dir.path, 'keys'));
  });
  afterEach(async () => {
    for (const s of streams) s.close();
    streams = [];
    await stack?.close();
    stack = undefined;
  });

  const cloudAuth = async (revocationsFile?: string) =>
    new TokenGatewayAuth(
      new TokenVerifier({
        key: await loadVerifyingKey({ keyFile: keys.publicKeyFile, field: '--gateway-key' }),
        audience: GATEWAY_AUDIENCE,
        ...(revocationsFile ? { revocations: new RevocationList(revocationsFile) } : {}),
      }),
    );

  it('identity - the cloud-stub refuses a missing or bad gateway token with UNAUTHENTICATED, a foreign Hello with PERMISSION_DENIED', async () => {
    stack = await startInProcess(dir.path, {}, { auth: await cloudAuth() });
    const port = stack.cloud.address.port;
    const other = await makeFleetKeys(join(dir.path, 'other'));
    const cases: Array<[Parameters<typeof RawUplink.connect>[1], string, status, RegExp]> = [
      [{}, 'gw-1', status.UNAUTHENTICATED, /missing "authorization: Bearer <gateway token>"/],
      [{ authorization: 'Basic abc' }, 'gw-1', status.UNAUTHENTICATED, /missing "authorization: Bearer/],
      [{ token: await other.gateway('gw-1') }, 'gw-1', status.UNAUTHENTICATED, /gateway token refused \(bad-signature\)/],
      [{ token: await keys.device('gw-1') }, 'gw-1', status.UNAUTHENTICATED, /gateway token refused \(wrong-audience\)/],
      [
        { token: await keys.gateway('gw-1', { now: Math.floor(Date.now() / 1000) - 7200 }) },
        'gw-1',
        status.UNAUTHENTICATED,
        /\(expired\)/,
      ],
      [
        { token: await keys.gateway('gw-1') },
        'gw-2',
        status.PERMISSION_DENIED,
        /Hello.gatewayId "gw-2" is not the token's subject "gw-1"/,
      ],
    ];
    for (const [options, hello, code, message] of cases) {
      const s = RawUplink.connect(port, options);
      streams.push(s);
      s.hello(hello);
      const ended = await s.ended;
      assert.equal(status[ended.code], status[code], ended.details);
      assert.match(ended.details, message);
    }
    assert.equal((await stack.cloud.stats()).records, 0);
  });

  it('identity - a gateway with its token streams to a cloud-stub that requires tokens; without a token file it waits for one', async () => {
    const tokenFile = join(dir.path, 'gw.token');
    stack = await startInProcess(
      dir.path,
      { upstream: { tokenFile }, uplink: { ...DEFAULT_UPLINK_SETTINGS, reconnectMaxMs: 200 } },
      { auth: await cloudAuth() },
    );
    await waitUntil('the uplink to say it has no token', async () =>
      /no token for the backend/.test((await stack!.gateway.stats()).upstreams[0]!.lastError ?? ''),
    );
    writeFileSync(tokenFile, await keys.gateway('gw-test'));
    await waitUntil('the uplink ready', async () => (await stack!.gateway.stats()).upstreams[0]!.state === 'ready');
    const client = await mqtt.connectAsync({
      host: '127.0.0.1',
      port: stack.gateway.mqttAddress.port,
      clientId: 'dev-1',
      reconnectPeriod: 0,
    });
    await client.publishAsync('devices/dev-1/telemetry', 'x', { qos: 1 });
    await client.endAsync();
    await waitUntil('at the cloud', async () => (await stack!.cloud.stats()).gateways['gw-test']?.records === 1);
  });

  it('identity - a gateway token that expires ends the stream; the gateway comes back with the fresh one from its file', async () => {
    const tokenFile = join(dir.path, 'gw.token');
    // Long enough for the uplink to come up on a loaded machine first: the file is rewritten only after that.
    writeFileSync(tokenFile, await keys.gateway('gw-test', { ttlSeconds: 5 }));
    stack = await startInProcess(
      dir.path,
      { upstream: { tokenFile }, uplink: { ...DEFAULT_UPLINK_SETTINGS, reconnectMaxMs: 200 } },
      { auth: await cloudAuth() },
    );
    await waitUntil('the uplink ready', async () => (await stack!.gateway.stats()).upstreams[0]!.state === 'ready');
    writeFileSync(tokenFile, await keys.gateway('gw-test'));
    await waitUntil('the stream ended for the expired token and a new one opened', async () => {
      const uplink = (await stack!.gateway.stats()).upstreams[0]!;
      return uplink.sessions >= 2 && uplink.state === 'ready';
    });
    assert.match((await stack.gateway.stats()).upstreams[0]!.lastError ?? '', /UNAUTHENTICATED: gateway token expired/);
  });
});
