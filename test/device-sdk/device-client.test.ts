/** The device SDK's client against a real in-process gateway and cloud-stub. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  ClientClosedError,
  connect,
  ConnectivityState,
  OutboxFullError,
  PayloadTooLargeError,
  type DeviceClient,
} from '@fleetgate/device-sdk';
import { readCloud } from '../support/delivery.ts';
import { makeFleetKeys } from '../support/fleet-keys.ts';
import { freePort } from '../support/free-port.ts';
import { startInProcess, type InProcessStack } from '../support/in-process.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { waitUntil } from '../support/test-device.ts';

describe('device sdk', function () {
  this.timeout(30_000);
  const dir = useTempDir();
  let stack: InProcessStack | undefined;
  let clients: DeviceClient[] = [];

  afterEach(async () => {
    await Promise.all(clients.map((c) => c.close({ drainTimeoutMs: 0 }).catch(() => {})));
    clients = [];
    await stack?.close();
    stack = undefined;
  });

  const device = (url: string, options: Partial<Parameters<typeof connect>[0]> = {}) => {
    const client = connect({ url, deviceId: 'sdk-1', reconnect: { maxMs: 200 }, ...options });
    client.on('error', () => {});
    clients.push(client);
    return client;
  };
  const url = (s: InProcessStack) => `127.0.0.1:${s.gateway.deviceGrpcAddress!.port}`;

  it('sdk - send resolves once the gateway committed it, with increasing seqs; the cloud gets every field', async () => {
    stack = await startInProcess(dir.path);
    const client = device(url(stack));
    const results = await Promise.all([
      client.send('first', { stream: 'vibration', contentType: 'text/plain', timeMs: 1234 }),
      client.send({ temp: 21.5 }),
      client.send(Buffer.from([1, 2, 3])),
    ]);
    assert.deepEqual(
      results.map((r) => r.seq),
      [1, 2, 3],
    );
    assert.equal((await stack.gateway.stats()).journal.lastSeq, 3, 'resolved only after the commit');
    await waitUntil('at the cloud', async () => (await stack!.cloud.stats()).records === 3);
    const records = readCloud(join(dir.path, 'cloud'));
    assert.deepEqual(
      records.map((r) => [
        r.deviceId,
        r.deviceSeq,
        r.stream,
        r.contentType,
        r.deviceTime,
        Buffer.from(r.payload, 'base64').toString('hex'),
      ]),
      [
        ['sdk-1', 1, 'vibration', 'text/plain', 1234, Buffer.from('first').toString('hex')],
        ['sdk-1', 2, '', 'application/json', records[1]!.deviceTime, Buffer.from('{"temp":21.5}').toString('hex')],
        ['sdk-1', 3, '', '', records[2]!.deviceTime, '010203'],
      ],
    );
  });

  it('sdk - messages taken while the gateway is away go once it is there; state changes are events', async () => {
    const port = await freePort();
    const client = device(`127.0.0.1:${port}`);
    await client.connectivity.waitFor(ConnectivityState.TRANSIENT_FAILURE);
    const sends = Array.from({ length: 50 }, (_, i) => client.send(`offline-${i}`));
    stack = await startInProcess(dir.path, { deviceGrpc: { host: '127.0.0.1', port } });
    await client.connectivity.waitFor(ConnectivityState.READY);
    assert.deepEqual(
      (await Promise.all(sends)).map((r) => r.seq),
      Array.from({ length: 50 }, (_, i) => i + 1),
    );
    assert.equal(client.stats().queued, 0);
  });

  it('sdk - what cannot be taken is refused at once: a full outbox, an oversize payload, a closed client', async () => {
    stack = await startInProcess(dir.path, { maxPayloadBytes: 100 });
    const client = device(url(stack), { outbox: { maxMessages: 2, maxBytes: 1 << 20 } });
    await client.connectivity.waitFor(ConnectivityState.READY);
    await assert.rejects(client.send(Buffer.alloc(101)), PayloadTooLargeError);
    const a = client.send('a');
    const b = client.send('b');
    await assert.rejects(client.send('c'), OutboxFullError);
    await Promise.all([a, b]);
    await client.close();
    await assert.rejects(client.send('d'), ClientClosedError);
    assert.equal(client.state, ConnectivityState.SHUTDOWN);
  });

  it('sdk - the token provider is asked again after a refusal', async () => {
    const keys = await makeFleetKeys(join(dir.path, 'keys'));
    stack = await startInProcess(dir.path, {
      allowAnonymous: false,
      deviceKey: { keyFile: keys.publicKeyFile, field: '--device-key' },
    });
    let asked = 0;
    const client = device(url(stack), {
      deviceId: '',
      getToken: async () => (++asked === 1 ? 'not-a-token' : keys.device('sdk-9')),
    });
    await client.connectivity.waitFor(ConnectivityState.READY);
    assert.ok(asked >= 2);
    assert.equal(client.deviceId, 'sdk-9', 'the id comes from the token');
    assert.match(client.stats().lastError ?? '', /UNAUTHENTICATED/);
    await client.send('with the second token');
  });

  it('sdk - close() waits for what is queued to be committed', async () => {
    stack = await startInProcess(dir.path);
    const client = device(url(stack));
    const sends = Array.from({ length: 200 }, (_, i) => client.send(`m${i}`));
    await client.close();
    assert.equal((await Promise.allSettled(sends)).filter((r) => r.status === 'fulfilled').length, 200);
    assert.equal((await stack.gateway.stats()).journal.lastSeq, 200);
  });
});
