import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from "better-sqlite3";
import { JOURNAL_FILE, JournalError, SqliteJournal } from '../../gateway/src/journal/journal-sqlite.ts';
import { journalContract } from './journal.contract.ts';
import { useTempDir } from '../support/temp-dir.ts';

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
});
