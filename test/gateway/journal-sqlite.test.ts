import assert from 'node:assert/strict';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { JOURNAL_FILE, SqliteJournal } from '../../gateway/src/journal/sqlite/journal-sqlite.ts';
import { journalContract, record } from './journal.contract.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { JournalError } from '../../gateway/src/errors.ts';

journalContract('sqlite, durability power', (dir, options) => new SqliteJournal({ dir, durability: 'power', ...options }));
journalContract('sqlite, durability process', (dir, options) => new SqliteJournal({ dir, durability: 'process', ...options }));

describe('journal (sqlite)', function () {
  const dir = useTempDir();

  it('journal - sqlite refuses a journal written by a newer schema', () => {
    const db = new Database(join(dir.path, JOURNAL_FILE));
    db.pragma('user_version = 99');
    db.close();
    assert.throws(() => new SqliteJournal({ dir: dir.path, durability: 'process' }), JournalError);
  });

  it('journal - sqlite refuses a file that is not a database', () => {
    writeFileSync(join(dir.path, JOURNAL_FILE), 'not a database, just text that is long enough to have a header');
    assert.throws(() => new SqliteJournal({ dir: dir.path, durability: 'process' }), /not a database/);
  });

  it('journal - sqlite gives the space of acked rows back to the file system (incremental vacuum)', function () {
    this.timeout(30_000);
    let now = 1_700_000_000_000;
    const journal = new SqliteJournal({ dir: dir.path, durability: 'process', clock: { now: () => now } });
    try {
      for (let i = 0; i < 20; i++) journal.commit(Array.from({ length: 1000 }, (_, j) => record('d', i * 1000 + j, 500)));
      journal.checkpoint();
      const peak = statSync(journal.file).size;
      assert.ok(peak > 10_000_000, `${peak} bytes at the high-water mark`);
      journal.commit([], [{ from: 1, to: 20_000 }]); // gives back a first step
      for (let i = 0; i < 10; i++) {
        now += 1000;
        journal.maintain(); // and the idle timer the rest, a step at a time
      }
      journal.checkpoint();
      const after = statSync(journal.file).size;
      assert.ok(after < peak / 10, `${after} bytes after the backlog was acked (peak ${peak})`);
      assert.equal(journal.stats().rows, 0);
    } finally {
      journal.close();
    }
  });

  it('journal - sqlite moves its unacked rows and gaps above the seqs a backend already holds (moveAbove)', () => {
    const journal = new SqliteJournal({ dir: dir.path, durability: 'process' });
    try {
      journal.commit(Array.from({ length: 6 }, (_, i) => record('d', i + 1)));
      journal.commit([], [{ from: 1, to: 2 }]);
      journal.recordGap({ from: 3, to: 3, reason: 'journal-full', count: 1, timeMs: 1 });
      journal.commit([], [{ from: 3, to: 3 }]); // row 3 freed: the gap 3..3 stands for it... and goes with the release
      journal.recordGap({ from: 4, to: 4, reason: 'too-old', count: 1, timeMs: 2 });
      assert.equal(journal.moveAbove(3), 0, 'nothing to move at or below the low-water mark');
      const before = journal.readAfter(0, 100, 1 << 20).map((r) => Buffer.from(r.payload).toString('hex'));
      assert.equal(journal.moveAbove(100), 97);
      assert.equal(journal.ackedThrough, 100);
      assert.equal(journal.lastSeq, 103);
      const after = journal.readAfter(0, 100, 1 << 20);
      assert.deepEqual(
        after.map((r) => r.seq),
        [101, 102, 103],
      );
      assert.deepEqual(
        after.map((r) => Buffer.from(r.payload).toString('hex')),
        before,
        'same rows, same order',
      );
      assert.deepEqual(
        journal.gaps().map((g) => [g.from, g.to, g.reason]),
        [[101, 101, 'too-old']],
      );
      assert.equal(journal.commit([record('d', 7)]).firstSeq, 104);
    } finally {
      journal.close();
    }
    const reopened = new SqliteJournal({ dir: dir.path, durability: 'process' });
    assert.equal(reopened.lastSeq, 104);
    assert.equal(reopened.welcomed, false);
    reopened.markWelcomed();
    reopened.close();
    const again = new SqliteJournal({ dir: dir.path, durability: 'process' });
    assert.equal(again.welcomed, true, 'remembered');
    again.close();
  });
});
