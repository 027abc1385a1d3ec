/**
 * Several upstreams, end to end: a real gateway routing alarms to two real cloud-stubs and bulk telemetry to
 * one, with one of them down: the other keeps flowing, the down one catches up once it is back, and the
 * journal lets a row go only once every upstream it was routed to has it.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { CloudStub } from '@fleetgate/cloud-stub';
import { Gateway, GATEWAY_DEFAULTS } from '@fleetgate/gateway';
import { useTempDir } from '../support/temp-dir.ts';
import { waitUntil } from '../support/test-device.ts';
import { freePort } from '../support/free-port.ts';

async function exported(cloud: CloudStub): Promise<Array<{ seq: number; stream: string }>> {
  const out = [];
  for await (const r of cloud.sink.exportRecords()) out.push({ seq: r.seq, stream: r.stream });
  return out;
}

describe('several upstreams', function () {
  this.timeout(60_000);
  const dir = useTempDir();
  const closers: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });

  it('upstreams - alarms to two backends, bulk to one; with the alarms backend down bulk keeps flowing, alarms catch up, rows go when both acked', async () => {
    const startCloud = async (name: string, port: number) => {
      const cloud = await CloudStub.start({
        listen: { host: '127.0.0.1', port },
        dataDir: join(dir.path, name),
        durability: 'process',
      });
      closers.push(() => cloud.close());
      return cloud;
    };
    const bulk = await startCloud('bulk', 0);
    const alarmsPort = await freePort();
    const gateway = await Gateway.start({
      ...GATEWAY_DEFAULTS,
      gatewayId: 'gw-farm',
      mqtt: { host: '127.0.0.1', port: 0 },
      deviceGrpc: null,
      admin: { host: '127.0.0.1', port: 0 },
      dataDir: join(dir.path, 'gateway'),
      durability: 'process',
      allowAnonymous: true,
      upstreams: [
        { name: 'alarms', addresses: [`127.0.0.1:${alarmsPort}`] },
        { name: 'bulk', addresses: [`127.0.0.1:${bulk.address.port}`] },
      ],
      routes: [
        { topic: 'devices/+/telemetry/alarms/#', to: ['alarms', 'bulk'] },
        { topic: 'devices/+/telemetry/#', to: ['bulk'] },
      ],
      uplink: { ...GATEWAY_DEFAULTS.uplink, reconnectMaxMs: 200 },
      logLevel: 'silent',
    });
    closers.push(() => gateway.close());

    const client = await mqtt.connectAsync({
      host: '127.0.0.1',
      port: gateway.mqttAddress.port,
      clientId: 'pump-1',
      reconnectPeriod: 0,
    });
    closers.push(() => client.endAsync());
    for (let i = 0; i < 100; i++) {
      await client.publishAsync(
        i % 4 === 0 ? 'devices/pump-1/telemetry/alarms/pressure' : 'devices/pump-1/telemetry',
        `reading ${i}`,
        { qos: 1 },
      );
    }

    // Bulk has everything; the journal keeps exactly the 25 alarms, for the alarms upstream only.
    await waitUntil('bulk to have all 100', async () => (await bulk.stats()).gateways['gw-farm']?.records === 100);
    const whileDown = await waitUntil('the journal to let go of what only bulk needed', async () => {
      const stats = await gateway.stats();
      return stats.journal.rows === 25 ? stats : undefined;
    });
    const [alarmsUp, bulkUp] = whileDown.upstreams;
    assert.equal(alarmsUp!.name, 'alarms');
    assert.notEqual(alarmsUp!.state, 'ready');
    assert.equal(alarmsUp!.pendingRows, 25);
    assert.equal(alarmsUp!.ackedThrough, 0);
    assert.ok(alarmsUp!.oldestPendingAgeMs !== null);
    assert.equal(bulkUp!.state, 'ready');
    assert.equal(bulkUp!.pendingRows, 0);
    assert.equal(bulkUp!.ackedThrough, 100);
    assert.equal(whileDown.dataAtRisk.unackedRows, 25);

    // Bulk is not held back by the alarms backend being down.
    await client.publishAsync('devices/pump-1/telemetry', 'while alarms is down', { qos: 1 });
    await waitUntil('bulk to have 101', async () => (await bulk.stats()).gateways['gw-farm']?.records === 101);

    // The alarms backend comes up: it catches up from its own cursor, and only then do those rows go.
    const alarms = await startCloud('alarms', alarmsPort);
    await waitUntil('the journal empty', async () => (await gateway.stats()).journal.rows === 0);
    const atAlarms = await exported(alarms);
    assert.equal(atAlarms.length, 25);
    assert.ok(
      atAlarms.every((r) => r.stream === 'alarms/pressure'),
      'only alarms went to the alarms backend',
    );
    assert.deepEqual(
      atAlarms.map((r) => r.seq),
      Array.from({ length: 25 }, (_, i) => 1 + 4 * i),
      'the same seqs as at bulk, each once',
    );
    const atBulk = await exported(bulk);
    assert.equal(new Set(atBulk.map((r) => r.seq)).size, 101);
    const after = await gateway.stats();
    assert.equal(after.upstreams[0]!.ackedThrough, 101);
    assert.equal(after.upstreams[0]!.pendingRows, 0);
  });
});
