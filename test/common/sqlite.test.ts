import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openSqlite } from '@fleetgate/core/sqlite';
import { useTempDir } from '../support/temp-dir.ts';

describe('sqlite', function () {
  const dir = useTempDir();

  it('sqlite - opens in WAL mode with synchronous FULL for power and NORMAL for process', () => {
    for (const [durability, level] of [
      ['power', 2],
      ['process', 1],
    ] as const) {
      const db = openSqlite(join(dir.path, 'nested', `${durability}.db`), { durability });
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      assert.equal(db.pragma('synchronous', { simple: true }), level);
      db.close();
    }
  });

  it('sqlite - a read-only open of a missing file fails instead of creating it', () => {
    assert.throws(() => openSqlite(join(dir.path, 'missing.db'), { durability: 'process', readonly: true }), /unable to open/);
  });
});
