/** The journal's clean close (journal/sqlite/clean-close.ts): what it leaves, when the next open trusts it, and when not. */
import assert from 'node:assert/strict';
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openJournal } from '../../gateway/src/journal/sqlite/heal.ts';
import { JOURNAL_FILE, SqliteJournal } from '../../gateway/src/journal/sqlite/journal-sqlite.ts';
import { record } from './journal.contract.ts';
import { useTempDir } from '../support/temp-dir.ts';

/** The snapshot row a clean close left, or undefined. */
function snapshotIn(dir: string): string | undefined {
  const db = new Database(join(dir, JOURNAL_FILE), { readonly: true });
  try {
    return (db.prepare('SELECT snapshot FROM clean_close').get() as { snapshot: string } | undefined)?.snapshot;
  } finally {
    db.close();
  }
}

describe('journal clean close', function () {
  this.timeout(20_000);
  const dir = useTempDir();
  const open = (upstreams = ['a', 'b']) => new SqliteJournal({ dir: dir.path, durability: 'process', upstreams });

  /** Rows 1..6 for both upstreams, b acknowledges 1..4 and a 1..2: a holds 3..6, b holds 5..6. */
  function fill(journal: SqliteJournal): void {
    journal.commit(
      [1, 2, 3, 4, 5, 6].map((n) => record('pump-1', n)),
      [],
      [1, 2, 3, 4, 5, 6].map(() => 0b11),
    );
    journal.commit(
      [],
      [
        { from: 1, to: 4, upstream: 1 },
        { from: 1, to: 2, upstream: 0 },
      ],
    );
  }

  const view = (journal: SqliteJournal) => ({
    stats: {
      rows: journal.stats().rows,
      payloadBytes: journal.stats().payloadBytes,
      lastSeq: journal.lastSeq,
      ackedThrough: journal.ackedThrough,
    },
    a: journal.backlogOf(0),
    b: journal.backlogOf(1),
  });

  it('journal - a clean close leaves the counters, and the next open takes them (and the snapshot is gone once it is open)', () => {
    let journal = open();
    fill(journal);
    const before = view(journal);
    journal.close();
    assert.ok(snapshotIn(dir.path), 'a clean close leaves a snapshot');
    journal = open();
    try {
      assert.equal(snapshotIn(dir.path), undefined, 'the open took it');
      assert.deepEqual(view(journal), before);
      assert.deepEqual(before.stats, {
        rows: 4,
        payloadBytes: 4 * record('pump-1', 1).payload.length,
        lastSeq: 6,
        ackedThrough: 2,
      });
      assert.equal(before.a.rows, 4);
      assert.equal(before.b.rows, 2);
      // And it goes on from there: the rest acknowledged, nothing is left.
      journal.commit(
        [],
        [
          { from: 3, to: 6, upstream: 0 },
          { from: 5, to: 6, upstream: 1 },
        ],
      );
      assert.equal(journal.stats().rows, 0);
    } finally {
      journal.close();
    }
  });

  it('journal - after a crash (no clean close) the open counts the rows, as before', () => {
    const journal = open();
    fill(journal);
    const before = view(journal);
    // What a kill -9 leaves: the database as committed, no clean close.
    journal.db.close();
    assert.equal(snapshotIn(dir.path), undefined);
    const reopened = open();
    try {
      assert.deepEqual(view(reopened), before);
    } finally {
      reopened.close();
    }
  });

  it('journal - a snapshot that does not agree with the rows is not used: the open counts instead', () => {
    const journal = open();
    fill(journal);
    journal.close();
    // Rows that changed under the snapshot (no gateway does this; a person with sqlite3 might).
    const db = new Database(join(dir.path, JOURNAL_FILE));
    db.exec('DELETE FROM journal WHERE seq = 3');
    db.close();
    const reopened = open();
    try {
      assert.equal(reopened.stats().rows, 3);
      assert.equal(reopened.ackedThrough, 3);
      assert.equal(reopened.backlogOf(0).rows, 3);
    } finally {
      reopened.close();
    }
  });

  it('journal - an upstream dropped from the configuration (forget-upstreams) changes rows at open: counted, not taken from the snapshot', () => {
    const journal = open();
    fill(journal);
    journal.close();
    const reopened = new SqliteJournal({ dir: dir.path, durability: 'process', upstreams: ['a'], forgetUpstreams: ['b'] });
    try {
      assert.equal(reopened.stats().rows, 4);
      assert.equal(reopened.backlogOf(0).rows, 4);
    } finally {
      reopened.close();
    }
  });

  it('heal - damage that a clean close left unchecked (quick_check is skipped after one) is found when the open reads it, and healed', () => {
    const journal = open(['default']);
    journal.commit([1, 2, 3].map((n) => record('pump-1', n)));
    journal.close();
    assert.ok(snapshotIn(dir.path));
    // The table's root page overwritten: what an SD card can do to a file while the gateway is stopped.
    const db = new Database(join(dir.path, JOURNAL_FILE));
    const root = (db.prepare("SELECT rootpage FROM sqlite_master WHERE name = 'journal'").get() as { rootpage: number }).rootpage;
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    db.close();
    const file = join(dir.path, JOURNAL_FILE);
    const fd = openSync(file, 'r+');
    writeSync(fd, Buffer.alloc(pageSize, 0xa5), 0, pageSize, (root - 1) * pageSize);
    closeSync(fd);
    const opened = openJournal({ dir: dir.path, durability: 'process' });
    try {
      assert.ok(opened.healed, 'healed at open');
      assert.match(opened.healed.damage, /SQLite cannot read it|quick_check/);
      // A fresh journal took over: it gives out seqs above the old ones (the seq lease).
      const next = opened.journal.commit([record('pump-1', 4)]);
      assert.ok(next.firstSeq > 3, `seq ${next.firstSeq} after the salvage`);
    } finally {
      opened.journal.close();
    }
  });
});
