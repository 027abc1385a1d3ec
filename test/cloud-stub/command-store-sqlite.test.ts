import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openSqlite } from '@fleetgate/core/sqlite';
import { SqliteCloudCommandStore } from '../../cloud-stub/src/commands/command-store-sqlite.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { commandStoreContract } from './command-store.contract.ts';

commandStoreContract('sqlite', (dir) => new SqliteCloudCommandStore({ dir, durability: 'process' }));

describe('command store (sqlite)', function () {
  const dir = useTempDir();

  it('command store - a commands.db from before created_order opens, and its commands come first among equals', async () => {
    const now = Date.now();
    const old = openSqlite(join(dir.path, 'commands.db'), { durability: 'process' });
    old.exec(`
      CREATE TABLE commands (
        command_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, name TEXT NOT NULL, payload BLOB NOT NULL,
        state TEXT NOT NULL, result BLOB NOT NULL, message TEXT NOT NULL, gateway_id TEXT,
        created INTEGER NOT NULL, updated INTEGER NOT NULL, expires INTEGER NOT NULL
      ) WITHOUT ROWID;
    `);
    old
      .prepare("INSERT INTO commands VALUES ('zzz-old', 'dev-1', 'old', x'', 'pending', x'', '', NULL, ?, ?, ?)")
      .run(now, now, now + 60_000);
    old.close();
    const store = new SqliteCloudCommandStore({ dir: dir.path, durability: 'process' });
    try {
      await store.create({ deviceId: 'dev-1', name: 'new', payload: Buffer.alloc(0), expiresAtMs: now + 60_000 });
      const pending = await store.pending('dev-1');
      assert.deepEqual(
        pending.map((c) => c.name),
        ['old', 'new'],
      );
    } finally {
      await store.close();
    }
  });
});
