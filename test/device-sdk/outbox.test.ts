import assert from 'node:assert/strict';
import { join } from 'node:path';
import { MemoryOutbox, SqliteOutbox } from '@fleetgate/device-sdk';
import { useTempDir } from '../support/temp-dir.ts';
import { message, outboxContract } from './outbox.contract.ts';

outboxContract('memory', (_dir, limits) => new MemoryOutbox(limits));
outboxContract('sqlite', (dir, limits) => new SqliteOutbox({ path: join(dir, 'outbox.db'), ...limits }));

describe('outbox (sqlite)', function () {
  const dir = useTempDir();

  it('outbox - a durable outbox keeps its epoch, its numbering and what was not acked across a reopen', () => {
    const path = join(dir.path, 'outbox.db');
    const first = new SqliteOutbox({ path });
    for (let n = 1; n <= 4; n++) first.add(message(n));
    first.flush();
    first.ackThrough(2);
    const epoch = first.epoch;
    first.close();
    const again = new SqliteOutbox({ path });
    assert.equal(again.epoch, epoch);
    assert.deepEqual(
      again.after(0, 10).map((e) => e.seq),
      [3, 4],
    );
    assert.equal(again.add(message(5)).seq, 5);
    again.close();
    const fresh = new SqliteOutbox({ path: join(dir.path, 'other.db') });
    assert.notEqual(fresh.epoch, epoch, 'a new outbox is a new epoch');
    fresh.close();
  });

  it('outbox - only flushed messages are sent, and only flushed ones survive a crash', () => {
    const path = join(dir.path, 'outbox.db');
    const outbox = new SqliteOutbox({ path });
    outbox.add(message(1));
    outbox.flush();
    outbox.add(message(2));
    assert.deepEqual(
      outbox.after(0, 10).map((e) => e.seq),
      [1],
      'not flushed: not sent',
    );
    outbox.close(); // as if the process died before the next flush
    const again = new SqliteOutbox({ path });
    assert.deepEqual(
      again.after(0, 10).map((e) => e.seq),
      [1],
    );
    again.close();
  });
});
