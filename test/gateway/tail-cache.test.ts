import assert from 'node:assert/strict';
import { SqliteJournal } from '../../gateway/src/journal/sqlite/journal-sqlite.ts';
import { TailCache } from '../../gateway/src/journal/tail-cache.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { record } from './journal.contract.ts';

describe('tail cache', function () {
  const dir = useTempDir();
  let journal: SqliteJournal;
  beforeEach(() => {
    journal = new SqliteJournal({ dir: dir.path, durability: 'process' });
  });
  afterEach(() => journal.close());

  const commit = (cache: TailCache, from: number, to: number, bytes = 10) => {
    const records = Array.from({ length: to - from + 1 }, (_, i) => record('d', from + i, bytes));
    const result = journal.commit(records);
    cache.add(result.firstSeq, records);
  };

  it('tail cache - serves what was just committed from memory, identical to what the journal holds', () => {
    const cache = new TailCache(journal, 1 << 20);
    commit(cache, 1, 20);
    const fromCache = cache.readAfter(4, 5, 1 << 20);
    assert.deepEqual(
      fromCache.map((r) => ({ ...r, payload: Buffer.from(r.payload) })),
      journal.readAfter(4, 5, 1 << 20).map((r) => ({ ...r, payload: Buffer.from(r.payload) })),
    );
    assert.deepEqual(cache.stats().hits, 1);
    assert.deepEqual(cache.stats().misses, 0);
  });

  it('tail cache - what it forgot for lack of room is read from the journal', () => {
    const cache = new TailCache(journal, 5 * (100 + 160));
    commit(cache, 1, 10, 100);
    assert.equal(cache.stats().cachedRecords, 5);
    assert.deepEqual(
      cache.readAfter(0, 3, 1 << 20).map((r) => r.seq),
      [1, 2, 3],
    );
    assert.equal(cache.stats().misses, 1);
    assert.deepEqual(
      cache.readAfter(5, 100, 1 << 20).map((r) => r.seq),
      [6, 7, 8, 9, 10],
    );
    assert.equal(cache.stats().hits, 1);
  });

  it('tail cache - released records leave the cache; reads after the last seq are empty', () => {
    const cache = new TailCache(journal, 1 << 20);
    commit(cache, 1, 10);
    cache.release(7);
    assert.equal(cache.stats().cachedRecords, 3);
    assert.deepEqual(
      cache.readAfter(7, 100, 1 << 20).map((r) => r.seq),
      [8, 9, 10],
    );
    assert.deepEqual(cache.readAfter(10, 100, 1 << 20), []);
  });

  it('tail cache - honours maxRecords and maxBytes like the journal', () => {
    const cache = new TailCache(journal, 1 << 20);
    commit(cache, 1, 10, 100);
    assert.deepEqual(
      cache.readAfter(0, 3, 1 << 20).map((r) => r.seq),
      [1, 2, 3],
    );
    assert.deepEqual(
      cache.readAfter(0, 100, 250).map((r) => r.seq),
      [1, 2],
    );
    assert.deepEqual(
      cache.readAfter(3, 100, 10).map((r) => r.seq),
      [4],
    );
  });

  it('tail cache - forgets acked ranges and dropped records in the middle and never serves them', () => {
    const cache = new TailCache(journal, 1 << 20);
    commit(cache, 1, 10);
    cache.forget({ from: 3, to: 5 });
    cache.forget({ from: 1, to: 1 });
    assert.equal(cache.stats().cachedRecords, 6);
    assert.deepEqual(
      cache.readAfter(1, 100, 1 << 20).map((r) => r.seq),
      [2, 6, 7, 8, 9, 10],
    );
    assert.deepEqual(
      cache.readAfter(2, 2, 1 << 20).map((r) => r.seq),
      [6, 7],
    );
    cache.forget({ from: 2, to: 2 });
    assert.equal(cache.stats().cachedRecords, 5);
    assert.deepEqual(
      cache.readAfter(5, 100, 1 << 20).map((r) => r.seq),
      [6, 7, 8, 9, 10],
    );
    assert.equal(cache.stats().misses, 0, 'all of it from memory');
    cache.forget({ from: 0, to: 100 });
    assert.equal(cache.stats().cachedRecords, 0);
    commit(cache, 11, 12);
    assert.deepEqual(
      cache.readAfter(10, 100, 1 << 20).map((r) => r.seq),
      [11, 12],
    );
  });
});
