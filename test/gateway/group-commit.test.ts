import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { GroupCommit, type AppendDone } from '../../gateway/src/journal/group-commit.ts';
import { SqliteJournal } from '../../gateway/src/journal/sqlite/journal-sqlite.ts';
import { Reserve, RESERVE_FILE } from '../../gateway/src/journal/sqlite/reserve.ts';
import type { Journal, JournalLimits } from '../../gateway/src/journal/journal.ts';
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

  const make = (
    overrides: {
      intervalMs?: number;
      maxRows?: number;
      journal?: Journal;
      rejectWhenFull?: boolean;
      onDiskFull?: (full: boolean) => void;
    } = {},
  ) =>
    new GroupCommit({
      intervalMs: overrides.intervalMs ?? 5,
      maxRows: overrides.maxRows ?? 100,
      journal: overrides.journal ?? journal,
      rejectWhenFull: overrides.rejectWhenFull ?? false,
      clock: time.clock,
      timers: time.timers,
      onCommitted: (result) => void commits.push({ rows: result.stored.length, firstSeq: result.firstSeq }),
      ...(overrides.onDiskFull ? { onDiskFull: overrides.onDiskFull } : {}),
    });

  const outcome = () => {
    const calls: string[] = [];
    const done: AppendDone = (err) => calls.push(err ? `${err.name}: ${err.message}` : 'durable');
    return { calls, done };
  };

  const reopenWith = (limits: JournalLimits, maxFileBytes?: number) => {
    journal.close();
    journal = new SqliteJournal({ dir: dir.path, durability: 'process', limits, ...(maxFileBytes ? { maxFileBytes } : {}) });
  };

  it('group commit - appends wait for one commit and hear back only after it', () => {
    const group = make();
    const a = outcome();
    const b = outcome();
    group.append([record('d1', 1), record('d1', 2)], a.done);
    group.append([record('d2', 1)], b.done);
    assert.deepEqual(a.calls, [], 'nothing is durable yet');
    assert.equal(journal.lastSeq, 0);
    time.tick(0);
    assert.deepEqual(commits, [{ rows: 3, firstSeq: 1 }]);
    assert.deepEqual([a.calls, b.calls], [['durable'], ['durable']]);
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
    assert.deepEqual(commits, [
      { rows: 1, firstSeq: 1 },
      { rows: 3, firstSeq: 2 },
    ]);
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

  it('group commit - released ranges ride along with the next commit and free the rows', () => {
    const group = make();
    group.append(
      [1, 2, 3].map((n) => record('d', n)),
      () => {},
    );
    time.tick(10);
    group.release({ from: 1, to: 2 });
    group.append([record('d', 4)], () => {});
    time.tick(10);
    assert.equal(commits.length, 2);
    assert.equal(journal.ackedThrough, 2);
    assert.deepEqual(
      journal.readAfter(0, 10, 1 << 20).map((r) => r.seq),
      [3, 4],
    );
    group.release({ from: 3, to: 4 });
    time.tick(10);
    assert.equal(journal.ackedThrough, 4, 'a release alone also gets committed');
  });

  it('group commit - a failed commit tells every append why and keeps the releases for the next one', () => {
    let failNext = false;
    const flaky: Journal = Object.create(journal, {
      commit: {
        value: (...args: Parameters<Journal['commit']>) => {
          if (failNext) {
            failNext = false;
            throw new Error('disk I/O error');
          }
          return journal.commit(...args);
        },
      },
    });
    const group = make({ journal: flaky });
    group.append([record('d', 1), record('d', 2)], () => {});
    time.tick(10);
    failNext = true;
    const a = outcome();
    group.release({ from: 1, to: 1 });
    group.append([record('d', 3)], a.done);
    time.tick(10);
    assert.deepEqual(a.calls, ['Error: disk I/O error']);
    assert.equal(group.stats().failedCommits, 1);
    time.tick(10);
    assert.equal(journal.ackedThrough, 1, 'the release was committed by the retry');
    assert.equal(journal.lastSeq, 2, 'the failed records were not kept: their devices were not acked');
  });

  it('group commit - reject-new: appends that do not fit the room are refused whole and in order, the rest is durable', () => {
    reopenWith({ maxBytes: 1000, maxAgeMs: 0, policy: 'reject-new' });
    const group = make({ rejectWhenFull: true });
    const fits = outcome();
    const tooBig = outcome();
    const after = outcome();
    group.append(
      [1, 2, 3, 4, 5, 6].map((n) => record('d', n, 100)),
      fits.done,
    );
    group.append(
      [7, 8, 9, 10, 11].map((n) => record('d', n, 100)),
      tooBig.done,
    );
    group.append([record('d', 12, 10)], after.done);
    time.tick(10);
    assert.deepEqual(fits.calls, ['durable']);
    assert.deepEqual(tooBig.calls, ['JournalFullError: the journal is full (reject-new): try again later']);
    assert.deepEqual(after.calls, [tooBig.calls[0]], 'nothing after a refused append is taken: devices keep their order');
    assert.equal(journal.lastSeq, 6);
    assert.equal(group.stats().rejectedAppends, 2);
    group.release({ from: 1, to: 6 });
    const retry = outcome();
    group.append(
      [7, 8, 9, 10, 11].map((n) => record('d', n, 100)),
      retry.done,
    );
    time.tick(10);
    assert.deepEqual(retry.calls, ['durable'], 'once the backend freed rows, appends fit again');
  });

  it('group commit - a full disk (SQLITE_FULL) refuses appends as "disk" until a probe finds space again', () => {
    reopenWith({ maxBytes: 0, maxAgeMs: 0, policy: 'drop-oldest' }, 256 * 1024);
    const states: boolean[] = [];
    const group = make({ onDiskFull: (full) => states.push(full) });
    const outcomes = [];
    for (let i = 1; i <= 400; i++) {
      const o = outcome();
      outcomes.push(o);
      group.append([record('d', i, 4000)], o.done);
      time.tick(10);
    }
    const refused = outcomes.filter((o) => o.calls[0]?.startsWith('JournalFullError'));
    assert.ok(refused.length > 0, 'the file cap was reached');
    assert.match(refused[0]!.calls[0]!, /disk is full/);
    assert.deepEqual(states, [true]);
    assert.ok(group.stats().diskFull);
    assert.ok(journal.full);
    assert.ok(!existsSync(join(dir.path, RESERVE_FILE)), 'the reserve was given up: its room is for the commits that free rows');
    const durable = outcomes.filter((o) => o.calls[0] === 'durable').length;
    assert.equal(journal.stats().rows, durable, 'what was refused was not stored; what was acked is all there');
    // Space returns: the backend frees rows. The release commit runs even while appends are refused.
    group.release({ from: 1, to: journal.lastSeq });
    time.tick(10);
    assert.deepEqual(states, [true, false], 'the commit that freed rows found the space at once');
    assert.ok(!journal.full);
    assert.equal(statSync(join(dir.path, RESERVE_FILE)).size, new Reserve(dir.path).bytes, 'the probe made the reserve again');
    const again = outcome();
    group.append([record('d', 999, 4000)], again.done);
    time.tick(10);
    assert.deepEqual(again.calls, ['durable']);
  });

  it('group commit - a journal opened short of room (no reserve) refuses appends as "disk" until a probe succeeds', () => {
    let room = false;
    const states: boolean[] = [];
    const group = new GroupCommit({
      intervalMs: 5,
      maxRows: 100,
      journal: {
        commit: (records, releases, routes) => journal.commit(records, releases, routes),
        get room() {
          return journal.room;
        },
        probe: () => {
          if (!room) throw Object.assign(new Error('no room'), { code: 'SQLITE_FULL' });
        },
        full: true,
      },
      rejectWhenFull: false,
      clock: time.clock,
      timers: time.timers,
      onDiskFull: (full) => states.push(full),
    });
    assert.deepEqual(states, [true], 'full from the start');
    const first = outcome();
    group.append([record('d', 1)], first.done);
    time.tick(10);
    assert.match(first.calls[0]!, /JournalFullError: the disk is full/);
    time.tick(1000);
    assert.deepEqual(states, [true], 'the probe found no room yet');
    room = true;
    time.tick(1000);
    assert.deepEqual(states, [true, false], 'the next probe did');
    const second = outcome();
    group.append([record('d', 2)], second.done);
    time.tick(10);
    assert.deepEqual(second.calls, ['durable']);
  });

  it('group commit - close commits what waits and refuses what comes after', () => {
    const group = make({ intervalMs: 1000 });
    group.append([record('d', 1)], () => {});
    time.tick(0);
    const a = outcome();
    group.append([record('d', 2)], a.done);
    group.close();
    assert.deepEqual(a.calls, ['durable']);
    assert.equal(journal.lastSeq, 2);
    const b = outcome();
    group.append([record('d', 3)], b.done);
    assert.deepEqual(b.calls, ['Error: the journal is closed']);
  });
});
