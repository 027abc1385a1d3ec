import assert from 'node:assert/strict';
import { GroupCommit, type AppendDone } from '../../gateway/src/journal/group-commit.ts';
import { SqliteJournal } from '../../gateway/src/journal/journal-sqlite.ts';
import type { Journal } from '../../gateway/src/journal/journal.ts';
import { fakeTime, type FakeTime } from '../support/fake-time.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { record } from './journal.contract.ts';

describe('group commit', function () {
  const dir = useTempDir();
  let time: FakeTime;
  let journal: SqliteJournal;
  let commits: Array<{ rows: number; firstSeq: number }>;

  beforeEach(() => {
    time = fakeTime();
    journal = new SqliteJournal({ dir: dir.path, durability: 'process' });
    commits = [];
  });
  afterEach(() => journal.close());

  const make = (overrides: { intervalMs?: number; maxRows?: number; journal?: Journal } = {}) =>
    new GroupCommit({
      intervalMs: overrides.intervalMs ?? 5,
      maxRows: overrides.maxRows ?? 100,
      journal: overrides.journal ?? journal,
      clock: time.clock,
      timers: time.timers,
      onCommitted: (result, records) => commits.push({ rows: records.length, firstSeq: result.firstSeq }),
    });

  const outcome = () => {
    const calls: Array<{ err?: string; seqs?: { firstSeq: number; lastSeq: number } }> = [];
    const done: AppendDone = (err, seqs) => calls.push(err ? { err: err.message } : { seqs: seqs! });
    return { calls, done };
  };

  it('group commit - appends wait for one commit and hear their seqs only after it', () => {
    const group = make();
    const a = outcome();
    const b = outcome();
    group.append([record('d1', 1), record('d1', 2)], a.done);
    group.append([record('d2', 1)], b.done);
    assert.deepEqual(a.calls, [], 'nothing is durable yet');
    assert.equal(journal.lastSeq, 0);
    time.tick(0);
    assert.deepEqual(commits, [{ rows: 3, firstSeq: 1 }]);
    assert.deepEqual(a.calls, [{ seqs: { firstSeq: 1, lastSeq: 2 } }]);
    assert.deepEqual(b.calls, [{ seqs: { firstSeq: 3, lastSeq: 3 } }]);
    assert.equal(journal.lastSeq, 3);
  });

  it('group commit - commits at most once per interval, however many appends come', () => {
    const group = make({ intervalMs: 5 });
    group.append([record('d', 1)], () => {});
    time.tick(0);
    for (let i = 2; i <= 4; i++) {
      group.append([record('d', i)], () => {});
      time.tick(1);
    }
    assert.equal(commits.length, 1, 'the second commit waits for the interval');
    time.tick(2);
    assert.deepEqual(commits, [{ rows: 1, firstSeq: 1 }, { rows: 3, firstSeq: 2 }]);
  });

  it('group commit - maxRows waiting commits at once, without waiting for the interval', () => {
    const group = make({ intervalMs: 1000, maxRows: 3 });
    group.append([record('d', 1)], () => {});
    time.tick(0);
    group.append([record('d', 2), record('d', 3)], () => {});
    assert.equal(commits.length, 1);
    group.append([record('d', 4)], () => {});
    assert.equal(commits.length, 2);
    assert.equal(group.stats().waiting, 0);
  });

  it('group commit - an ack rides along with the next commit and frees the rows', () => {
    const group = make();
    group.append([1, 2, 3].map((n) => record('d', n)), () => {});
    time.tick(10);
    group.ack(2);
    group.append([record('d', 4)], () => {});
    time.tick(10);
    assert.equal(commits.length, 2);
    assert.equal(journal.ackedThrough, 2);
    assert.deepEqual(journal.readAfter(0, 10, 1 << 20).map((r) => r.seq), [3, 4]);
    group.ack(4);
    time.tick(10);
    assert.equal(journal.ackedThrough, 4, 'an ack alone also gets committed');
  });

  it('group commit - a failed commit tells every append why and keeps the ack for the next one', () => {
    let failNext = false;
    const flaky: Journal = {
      commit: (records, ackedThrough) => {
        if (failNext) {
          failNext = false;
          throw new Error('disk I/O error');
        }
        return journal.commit(records, ackedThrough);
      },
      readAfter: (...args) => journal.readAfter(...args),
      get lastSeq() {
        return journal.lastSeq;
      },
      get ackedThrough() {
        return journal.ackedThrough;
      },
      stats: () => journal.stats(),
      lastDeviceSeq: (deviceId, epoch) => journal.lastDeviceSeq(deviceId, epoch),
      close: () => journal.close(),
    };
    const group = make({ journal: flaky });
    group.append([record('d', 1), record('d', 2)], () => {});
    time.tick(10);
    failNext = true;
    const a = outcome();
    group.ack(1);
    group.append([record('d', 3)], a.done);
    time.tick(10);
    assert.deepEqual(a.calls, [{ err: 'disk I/O error' }]);
    assert.equal(group.stats().failedCommits, 1);
    time.tick(10);
    assert.equal(journal.ackedThrough, 1, 'the ack was committed by the retry');
    assert.equal(journal.lastSeq, 2, 'the failed records were not kept: their devices were not acked');
  });

  it('group commit - close commits what waits and refuses what comes after', () => {
    const group = make({ intervalMs: 1000 });
    group.append([record('d', 1)], () => {});
    time.tick(0);
    const a = outcome();
    group.append([record('d', 2)], a.done);
    group.close();
    assert.deepEqual(a.calls, [{ seqs: { firstSeq: 2, lastSeq: 2 } }]);
    const b = outcome();
    group.append([record('d', 3)], b.done);
    assert.deepEqual(b.calls, [{ err: 'the journal is closed' }]);
  });
});
