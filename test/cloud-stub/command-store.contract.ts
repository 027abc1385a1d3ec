import assert from 'node:assert/strict';
import type { CloudCommand, CloudCommandStore, DeviceLocation } from '../../cloud-stub/src/commands/command-store.ts';
import { useTempDir } from '../support/temp-dir.ts';

const HOUR_MS = 3600_000;

const location = (gatewayId: string, online = true): DeviceLocation => ({
  gatewayId,
  online,
  protocol: 'mqtt',
  updatedAtMs: 1_700_000_000_000,
});

/**
 * What every CloudCommandStore must do (cloud-stub/src/commands/command-store.ts). `open(dir)` opens the store kept
 * in `dir`; opening it again must find what was stored.
 */
export function commandStoreContract(name: string, open: (dir: string) => CloudCommandStore | Promise<CloudCommandStore>): void {
  describe(`command store contract - ${name}`, function () {
    const dir = useTempDir();
    let store: CloudCommandStore;
    beforeEach(async () => {
      store = await open(dir.path);
    });
    afterEach(async () => store.close());

    const create = (deviceId = 'dev-1', ttlMs = HOUR_MS, commandName = 'reboot') =>
      store.create({
        deviceId,
        name: commandName,
        payload: Buffer.from(`{"to":"${deviceId}"}`),
        expiresAtMs: Date.now() + ttlMs,
      });

    it('command store - creates a pending command with every field, and get returns it as created', async () => {
      const before = Date.now();
      const expiresAtMs = before + HOUR_MS;
      const command = await store.create({
        deviceId: 'dev-1',
        name: 'set-interval',
        payload: Buffer.from('{"s":30}'),
        expiresAtMs,
      });
      assert.match(command.commandId, /^[\w-]{8,}$/);
      assert.ok(command.createdAtMs >= before && command.createdAtMs <= Date.now());
      assert.deepEqual(command, {
        commandId: command.commandId,
        deviceId: 'dev-1',
        name: 'set-interval',
        payload: Buffer.from('{"s":30}'),
        state: 'pending',
        result: Buffer.alloc(0),
        message: '',
        gatewayId: null,
        createdAtMs: command.createdAtMs,
        updatedAtMs: command.createdAtMs,
        expiresAtMs,
      });
      assert.deepEqual(await store.get(command.commandId), command);
      const other = await create();
      assert.notEqual(other.commandId, command.commandId, 'every command has an id of its own');
    });

    it('command store - an empty payload is kept as an empty payload', async () => {
      const command = await store.create({
        deviceId: 'dev-1',
        name: 'ping',
        payload: Buffer.alloc(0),
        expiresAtMs: Date.now() + HOUR_MS,
      });
      assert.deepEqual((await store.get(command.commandId))?.payload, Buffer.alloc(0));
    });

    it('command store - an id it never made is unknown, whatever characters it has', async () => {
      // Ids come from the admin API's URL (GET /v1/commands/:id): anything a client types.
      for (const id of ['no-such-command', '00000000-0000-0000-0000-000000000000', 'a b', 'a.b', '.', '*', '>', 'ü', '%2E']) {
        assert.equal(await store.get(id), undefined, JSON.stringify(id));
        assert.equal(await store.update(id, 'queued', {}), undefined, JSON.stringify(id));
      }
    });

    it('command store - moves a command forward with the fields given, and get sees it', async () => {
      const command = await create();
      const queued = await store.update(command.commandId, 'queued', { gatewayId: 'gw-a' });
      assert.equal(queued?.state, 'queued');
      assert.equal(queued?.gatewayId, 'gw-a');
      assert.ok(queued!.updatedAtMs >= command.updatedAtMs);
      const succeeded = await store.update(command.commandId, 'succeeded', { result: Buffer.from('"ok"'), message: 'done' });
      assert.deepEqual(
        { ...succeeded, updatedAtMs: 0 },
        {
          ...command,
          state: 'succeeded',
          result: Buffer.from('"ok"'),
          message: 'done',
          gatewayId: 'gw-a',
          updatedAtMs: 0,
        },
      );
      assert.deepEqual(await store.get(command.commandId), succeeded);
    });

    it('command store - states only move forward, and a final state never changes', async () => {
      const command = await create();
      await store.update(command.commandId, 'delivered', { gatewayId: 'gw-a' });
      const back = await store.update(command.commandId, 'queued', { gatewayId: 'gw-b' });
      assert.equal(back?.state, 'delivered', 'an update that is not forward returns the command as it is');
      assert.equal(back?.gatewayId, 'gw-a', 'and changes nothing');
      const failed = await store.update(command.commandId, 'failed', { message: 'no battery' });
      assert.equal(failed?.state, 'failed');
      for (const state of ['succeeded', 'expired', 'rejected', 'failed', 'pending'] as const) {
        const after = await store.update(command.commandId, state, { message: state });
        assert.deepEqual(after, failed, `a failed command stays failed (${state})`);
      }
      assert.deepEqual(await store.get(command.commandId), failed);
    });

    it('command store - updates of one command at the same time: the furthest state wins, whatever order they land in', async () => {
      const ids: string[] = [];
      for (let round = 0; round < 5; round++) {
        const command = await create();
        ids.push(command.commandId);
        await Promise.all([
          store.update(command.commandId, 'queued', { gatewayId: 'gw-a' }),
          store.update(command.commandId, 'succeeded', { result: Buffer.from('1'), gatewayId: 'gw-a' }),
          store.update(command.commandId, 'delivered', { gatewayId: 'gw-a' }),
        ]);
        const stored = await store.get(command.commandId);
        assert.equal(stored?.state, 'succeeded', `round ${round}`);
        assert.deepEqual(stored?.result, Buffer.from('1'));
      }
      // What the store holds, not only what it remembers: a fresh open reads the same.
      await store.close();
      store = await open(dir.path);
      for (const id of ids) assert.equal((await store.get(id))?.state, 'succeeded', id);
    });

    it('command store - pending lists the unconfirmed, unexpired commands of a device, or of all, oldest first', async () => {
      const created: CloudCommand[] = [];
      for (let i = 0; i < 8; i++) created.push(await create(i % 2 ? 'dev-odd' : 'dev-even', HOUR_MS, `c${i}`));
      const expired = await create('dev-even', -1);
      await store.update(created[2]!.commandId, 'queued', { gatewayId: 'gw-a' });
      await store.update(created[5]!.commandId, 'rejected', { message: 'no handler' });
      const names = (commands: CloudCommand[]) => commands.map((c) => c.name);
      // Created one after the other, often within the same millisecond: the order they were created in.
      assert.deepEqual(names(await store.pending('dev-even')), ['c0', 'c4', 'c6']);
      assert.deepEqual(names(await store.pending('dev-odd')), ['c1', 'c3', 'c7']);
      assert.deepEqual(names(await store.pending()), ['c0', 'c1', 'c3', 'c4', 'c6', 'c7']);
      assert.deepEqual(await store.pending('dev-nobody'), []);
      assert.ok(!(await store.pending()).some((c) => c.commandId === expired.commandId), 'an expired one is not pending');
    });

    it('command store - unconfirmedExpired lists the pending commands past their expiry, and only those', async () => {
      const now = Date.now();
      const soon = await store.create({ deviceId: 'dev-1', name: 'a', payload: Buffer.alloc(0), expiresAtMs: now + 1000 });
      const later = await store.create({ deviceId: 'dev-2', name: 'b', payload: Buffer.alloc(0), expiresAtMs: now + 5000 });
      const taken = await store.create({ deviceId: 'dev-1', name: 'c', payload: Buffer.alloc(0), expiresAtMs: now + 1000 });
      await store.update(taken.commandId, 'queued', { gatewayId: 'gw-a' });
      const ids = async (atMs: number) => (await store.unconfirmedExpired(atMs)).map((c) => c.commandId).sort();
      assert.deepEqual(await ids(now), []);
      assert.deepEqual(await ids(now + 1000), [soon.commandId], 'at its expiry it has expired');
      assert.deepEqual(await ids(now + 10_000), [soon.commandId, later.commandId].sort());
      await store.update(soon.commandId, 'expired', { message: 'nobody took it' });
      assert.deepEqual(await ids(now + 10_000), [later.commandId]);
    });

    it('command store - remembers where each device was last reported', async () => {
      assert.equal(await store.location('dev-1'), undefined);
      await store.locate('dev-1', location('gw-a'));
      await store.locate('dev:2.b', location('gw-b', false));
      assert.deepEqual(await store.location('dev-1'), location('gw-a'));
      assert.deepEqual(await store.location('dev:2.b'), location('gw-b', false));
      await store.locate('dev-1', { ...location('gw-b', false), protocol: 'grpc', updatedAtMs: 1_700_000_000_500 });
      assert.deepEqual(await store.location('dev-1'), {
        gatewayId: 'gw-b',
        online: false,
        protocol: 'grpc',
        updatedAtMs: 1_700_000_000_500,
      });
    });

    it('command store - what it holds survives a reopen', async () => {
      const pending = await create('dev-1');
      const done = await create('dev-2');
      await store.update(done.commandId, 'succeeded', { result: Buffer.from('42'), gatewayId: 'gw-a' });
      await store.locate('dev-1', location('gw-a'));
      const doneNow = await store.get(done.commandId);
      await store.close();
      store = await open(dir.path);
      assert.deepEqual(await store.get(pending.commandId), pending);
      assert.deepEqual(await store.get(done.commandId), doneNow);
      assert.deepEqual(
        (await store.pending()).map((c) => c.commandId),
        [pending.commandId],
      );
      assert.deepEqual(await store.location('dev-1'), location('gw-a'));
      assert.equal((await store.update(done.commandId, 'failed', {}))?.state, 'succeeded', 'still final');
    });
  });
}
