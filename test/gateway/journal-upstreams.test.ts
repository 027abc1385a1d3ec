/** The journal with several upstreams: routes, a cursor per upstream, rows freed once every routed upstream acked. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { DeadLetters, type Replay } from '../../gateway/src/journal/dead-letters.ts';
import { JOURNAL_FILE, SqliteJournal } from '../../gateway/src/journal/sqlite/journal-sqlite.ts';
import type { NewRecord } from '../../gateway/src/journal/journal.ts';
import { TailCache } from '../../gateway/src/journal/tail-cache.ts';
import { Router } from '../../gateway/src/uplink/router.ts';
import { record } from './journal.contract.ts';
import { useTempDir } from '../support/temp-dir.ts';

const ALARMS = 0;
const BULK = 1;
/** Alarms (stream "alarms/...") go to both upstreams, everything else to bulk only. */
const router = new Router(
  ['alarms', 'bulk'],
  [
    { topic: 'devices/+/telemetry/alarms/#', to: ['alarms', 'bulk'] },
    { topic: '#', to: ['bulk'] },
  ],
);

/**
 * What the journal thread does: each record's route decided before the commit (uplink/router.ts), which the
 * journal stores as it is given.
 */
function routing(journal: SqliteJournal, route = (r: NewRecord | Replay) => router.route(r)): SqliteJournal {
  const commit = journal.commit.bind(journal);
  journal.commit = (records, releases = [], routes = records.map(route)) => commit(records, releases, routes);
  return journal;
}

function alarm(n: number): NewRecord {
  return { ...record('pump-1', n), stream: 'alarms/pressure' };
}

describe('journal with several upstreams', function () {
  this.timeout(20_000);
  const dir = useTempDir();

  function open(upstreams = ['alarms', 'bulk'], forgetUpstreams: string[] = []): SqliteJournal {
    return routing(new SqliteJournal({ dir: dir.path, durability: 'process', upstreams, forgetUpstreams }));
  }

  it('upstreams - routes: the first matching route decides; no route matching sends everywhere', () => {
    assert.equal(router.mask('pump-1', 'alarms/pressure'), 0b11);
    assert.equal(router.mask('pump-1', ''), 0b10);
    assert.equal(router.mask('pump-1', 'vibration'), 0b10);
    const partial = new Router(['a', 'b', 'c'], [{ topic: 'devices/pump-1/#', to: ['c'] }]);
    assert.equal(partial.mask('pump-1', 'x/y'), 0b100);
    assert.equal(partial.mask('pump-2', 'x/y'), 0b111, 'matched by no route: every upstream');
    assert.equal(partial.mask('pump-2', ''), 0b111);
    assert.throws(() => new Router(['a'], [{ topic: '#', to: ['nope'] }]), /"nope", which is not an upstream/);
  });

  it('upstreams - each reads only what was routed to it; a row goes only once every upstream it went to acked it', () => {
    const journal = open();
    try {
      // seqs 1..4: alarm, bulk, alarm, bulk
      const result = journal.commit([alarm(1), record('pump-1', 2), alarm(3), record('pump-1', 4)]);
      assert.deepEqual(result.routes, [0b11, 0b10, 0b11, 0b10]);
      assert.deepEqual(
        journal.readAfter(0, 10, 1 << 20, undefined, ALARMS).map((r) => r.seq),
        [1, 3],
      );
      assert.deepEqual(
        journal.readAfter(0, 10, 1 << 20, undefined, BULK).map((r) => r.seq),
        [1, 2, 3, 4],
      );
      assert.deepEqual(journal.backlogOf(ALARMS), {
        rows: 2,
        payloadBytes: 32,
        ackedThrough: 0,
        oldestTimeMs: 1_700_000_001_001,
      });

      // bulk acks everything: its own rows go, the alarms stay for the alarms upstream.
      journal.commit([], [{ from: 1, to: 4, upstream: BULK }]);
      assert.equal(journal.stats().rows, 2);
      assert.deepEqual(journal.readAfter(0, 10, 1 << 20, undefined, BULK), []);
      assert.equal(journal.backlogOf(BULK).rows, 0);
      assert.equal(journal.backlogOf(BULK).ackedThrough, 4);
      assert.equal(journal.ackedThrough, 0, 'the low-water mark waits for the slowest upstream');

      // the alarms upstream acks seq 3 first (live before backlog): its cursor stays below 1.
      journal.commit([], [{ from: 3, to: 3, upstream: ALARMS }]);
      assert.deepEqual(journal.backlogOf(ALARMS), {
        rows: 1,
        payloadBytes: 16,
        ackedThrough: 0,
        oldestTimeMs: 1_700_000_001_001,
      });
      journal.commit([], [{ from: 1, to: 1, upstream: ALARMS }]);
      assert.equal(journal.stats().rows, 0);
      assert.equal(journal.ackedThrough, 4);
      assert.equal(journal.backlogOf(ALARMS).ackedThrough, 4);
      assert.equal(journal.stats().freedBytes, 64);
    } finally {
      journal.close();
    }
  });

  it('upstreams - what each waits for survives a restart, and a dropped prefix becomes a gap for those still waiting', () => {
    let journal = open();
    journal.commit([alarm(1), record('pump-1', 2), record('pump-1', 3), alarm(4)]);
    journal.commit([], [{ from: 1, to: 4, upstream: ALARMS }]);
    journal.close();
    journal = routing(
      new SqliteJournal({
        dir: dir.path,
        durability: 'process',
        upstreams: ['alarms', 'bulk'],
        limits: { maxBytes: 40, maxAgeMs: 0, policy: 'drop-oldest' },
      }),
      (r) => router.mask(r.deviceId, r.stream),
    );
    try {
      assert.deepEqual(journal.backlogOf(ALARMS), { rows: 0, payloadBytes: 0, ackedThrough: 4, oldestTimeMs: null });
      assert.equal(journal.backlogOf(BULK).rows, 4);
      // 4 x 16 bytes held over a 40-byte limit: the next commit drops the oldest rows, down to 95% of it.
      journal.commit([record('pump-1', 5)]);
      assert.deepEqual(
        journal.gaps(BULK).map((g) => [g.from, g.to, g.reason]),
        [[1, 3, 'journal-full']],
      );
      assert.deepEqual(journal.gaps(ALARMS), [], 'the alarms upstream had acked those rows: no gap for it');
      assert.equal(journal.backlogOf(BULK).rows, 2);
    } finally {
      journal.close();
    }
  });

  it('upstreams - an upstream leaving the configuration with rows waiting for it: the journal refuses to open unless told to forget it', () => {
    let journal = open();
    journal.commit([alarm(1), record('pump-1', 2)]);
    journal.commit([], [{ from: 1, to: 2, upstream: BULK }]);
    journal.close();
    assert.throws(
      () => new SqliteJournal({ dir: dir.path, durability: 'process', upstreams: ['bulk'] }),
      /forget-upstreams: .* holds 1 rows that upstream "alarms" has not acknowledged/,
    );
    journal = new SqliteJournal({ dir: dir.path, durability: 'process', upstreams: ['bulk'], forgetUpstreams: ['alarms'] });
    try {
      assert.equal(journal.stats().rows, 0, 'the alarm row was only waiting for the forgotten upstream');
      journal.commit([record('pump-1', 3)]);
      assert.equal(journal.backlogOf(0).rows, 1);
      journal.commit([], [{ from: 3, to: 3, upstream: 0 }]);
    } finally {
      journal.close();
    }
    // An upstream that has caught up can leave without being named.
    journal = new SqliteJournal({ dir: dir.path, durability: 'process', upstreams: ['other'] });
    try {
      journal.commit([record('pump-1', 4)]);
      assert.deepEqual(
        journal.readAfter(0, 10, 1 << 20, undefined, 0).map((r) => r.seq),
        [4],
      );
    } finally {
      journal.close();
    }
  });

  it('upstreams - a journal from before upstreams had names: its rows wait for the first configured upstream', () => {
    let journal = open(['default']);
    journal.commit([record('pump-1', 1), record('pump-1', 2)]);
    journal.close();
    // Make it look as schema 4 wrote it: no upstreams table, no pending columns' meaning.
    const db = new Database(join(dir.path, JOURNAL_FILE));
    db.exec('DROP TABLE upstreams; PRAGMA user_version = 4');
    db.close();
    journal = open(['main', 'backup']);
    try {
      assert.equal(journal.backlogOf(0).rows, 2, "the first configured upstream took the unnamed one's rows");
      assert.equal(journal.backlogOf(1).rows, 0);
      journal.commit([], [{ from: 1, to: 2, upstream: 0 }]);
      assert.equal(journal.stats().rows, 0);
    } finally {
      journal.close();
    }
  });

  it("upstreams - each upstream's tail cache holds only its records and reads the rest through its own view", () => {
    const journal = open();
    try {
      const result = journal.commit([alarm(1), record('pump-1', 2), alarm(3)]);
      const view = {
        readAfter: (a: number, n: number, b: number, t?: number) => journal.readAfter(a, n, b, t, ALARMS),
        get ackedThrough() {
          return journal.backlogOf(ALARMS).ackedThrough;
        },
        get lastSeq() {
          return journal.lastSeq;
        },
        gaps: () => journal.gaps(ALARMS),
      };
      const tail = new TailCache(view, 1 << 20, ALARMS);
      tail.add(result.firstSeq, result.stored, result.routes);
      assert.equal(tail.stats().cachedRecords, 2);
      assert.deepEqual(
        tail.readAfter(0, 10, 1 << 20).map((r) => r.seq),
        [1, 3],
      );
      assert.equal(tail.stats().hits, 1);
      tail.clear();
      assert.deepEqual(
        tail.readAfter(0, 10, 1 << 20).map((r) => r.seq),
        [1, 3],
        'from the journal, filtered the same way',
      );
    } finally {
      journal.close();
    }
  });

  it('upstreams - a dead letter remembers which upstreams refused it, and its replay goes to those only', () => {
    const journal = open();
    try {
      journal.commit([alarm(1)]); // routed to both
      const letters = new DeadLetters(journal.deadLetters);
      const [row] = journal.readAfter(0, 1, 1 << 20);
      letters.add(row!, 'schema mismatch', 1000, 'bulk');
      letters.add(row!, 'schema mismatch', 1001, 'bulk');
      assert.deepEqual(letters.get(1)!.upstreams, ['bulk']);
      journal.commit([], [{ from: 1, to: 1, upstream: BULK }]); // bulk gives up on it; alarms took it
      journal.commit([], [{ from: 1, to: 1, upstream: ALARMS }]);
      assert.ok(letters.markReplay(1));
      const { records, done } = letters.takeReplays(2000);
      assert.deepEqual(records[0]!.upstreams, ['bulk']);
      const replayed = journal.commit(records);
      done();
      assert.deepEqual(replayed.routes, [0b10], 'to bulk, which refused it, not to alarms, which has it');
      assert.deepEqual(journal.readAfter(0, 10, 1 << 20, undefined, ALARMS), []);
      assert.deepEqual(
        journal.readAfter(0, 10, 1 << 20, undefined, BULK).map((r) => r.seq),
        [2],
      );
      assert.equal(letters.list().length, 0);

      // Refused by both: both get the replay; a name no longer configured is routed as usual.
      letters.add(row!, 'a', 1, 'alarms');
      letters.add(row!, 'b', 2, 'bulk');
      assert.deepEqual(letters.get(1)!.upstreams, ['alarms', 'bulk']);
      assert.equal(letters.get(1)!.reason, 'b');
      assert.equal(router.route({ deviceId: 'pump-1', stream: 'alarms/pressure', upstreams: ['alarms', 'bulk'] }), 0b11);
      assert.equal(router.route({ deviceId: 'pump-1', stream: '', upstreams: ['gone'] }), 0b10);
    } finally {
      journal.close();
    }
  });
});
