import assert from 'node:assert/strict';
import { JetStreamCommandStore } from '../../cloud-stub/src/commands/command-store-jetstream.ts';
import { waitUntil } from '../support/test-device.ts';
import { commandStoreContract } from './command-store.contract.ts';
import { useNatsCluster } from './nats-fixture.ts';

describe('command store (jetstream) on a 3-node cluster', function () {
  this.timeout(60_000);
  const nats = useNatsCluster();
  // Every contract case gets buckets of its own (a prefix of its own): its temp dir names them.
  const prefixes = new Map<string, string>();
  const prefixFor = (dir: string) => prefixes.get(dir) ?? prefixes.set(dir, `contract${prefixes.size + 1}`).get(dir)!;
  commandStoreContract('jetstream KV (R3)', (dir) =>
    JetStreamCommandStore.open(nats.nc, { prefix: prefixFor(dir), replicas: 3 }),
  );

  let opened: JetStreamCommandStore[] = [];
  afterEach(async () => {
    await Promise.all(opened.map((s) => s.close()));
    opened = [];
  });
  const replica = async (prefix: string) => {
    const store = await JetStreamCommandStore.open(nats.nc, { prefix, replicas: 3 });
    opened.push(store);
    return store;
  };

  it('jetstream command store - replicas share commands and locations: what one writes, the other reads and moves on', async () => {
    const a = await replica('shared1');
    const b = await replica('shared1');
    const command = await a.create({
      deviceId: 'dev-1',
      name: 'reboot',
      payload: Buffer.from('1'),
      expiresAtMs: Date.now() + 60_000,
    });
    // b has it at once (read from the bucket if its watch has not brought it yet), and lists it once it has.
    assert.deepEqual(await b.get(command.commandId), command);
    await waitUntil('b lists the command as pending', async () => (await b.pending('dev-1')).length === 1);
    assert.equal((await b.update(command.commandId, 'queued', { gatewayId: 'gw-b' }))?.state, 'queued');
    await waitUntil('a sees it queued', async () => (await a.get(command.commandId))?.state === 'queued');
    assert.deepEqual(await a.pending(), []);
    // a decides on what b wrote: queued -> succeeded is forward, succeeded -> delivered is not.
    assert.equal((await a.update(command.commandId, 'succeeded', { result: Buffer.from('ok') }))?.gatewayId, 'gw-b');
    assert.equal((await b.update(command.commandId, 'delivered', {}))?.state, 'succeeded');
    await b.locate('dev-1', { gatewayId: 'gw-b', online: true, protocol: 'grpc', updatedAtMs: 1 });
    await waitUntil('a knows where dev-1 is', async () => (await a.location('dev-1'))?.gatewayId === 'gw-b');
  });

  it('jetstream command store - a command created on one replica is announced to the others', async () => {
    const a = await replica('shared2');
    const b = await replica('shared2');
    const heard: string[] = [];
    b.onAnnounce((id) => heard.push(id));
    await nats.nc.flush();
    a.announce('cmd-1');
    await waitUntil('b hears the announcement', () => heard.includes('cmd-1'));
  });
});
