import assert from 'node:assert/strict';
import type { Clock } from '@fleetgate/core';
import { DeadLetters } from '../../gateway/src/journal/dead-letters.ts';
import { EVERY_UPSTREAM, type Journal, type JournalLimits, type NewRecord } from '../../gateway/src/journal/journal.ts';
import { useTempDir } from '../support/temp-dir.ts';

export function record(deviceId: string, n: number, payloadBytes = 16): NewRecord {
  return {
    deviceId,
    stream: n % 2 === 0 ? '' : 'vibration',
    payload: Buffer.alloc(payloadBytes, n % 251),
    contentType: n % 3 === 0 ? 'application/json' : '',
    deviceSeq: 0,
    deviceEpoch: '',
    deviceTimeMs: 1_700_000_000_000 + n,
    gatewayTimeMs: 1_700_000_001_000 + n,
  };
}

export interface OpenOptions {
  limits?: JournalLimits;
  clock?: Clock;
  /** The upstreams rows are kept for, in configuration order (default: one). */
  upstreams?: string[];
}

/**
 * What every Journal implementation must do. `open(dir, options)` opens the journal kept in `dir` (a fresh temp
 * folder per test; opening it again after close() must find what was committed).
 */
export function journalContract(name: string, open: (dir: string, options?: OpenOptions) => Journal): void {
  describe(`journal contract - ${name}`, function () {
    const dir = useTempDir();
    let journal: Journal;
    beforeEach(() => {
      journal = open(dir.path);
    });
    afterEach(() => journal.close());

    const reopen = (options?: OpenOptions) => {
      journal.close();
      journal = open(dir.path, options);
    };
    const held = () => journal.readAfter(0, 1000, 1 << 30).map((r) => r.seq);
    const range = (from: number, to: number) => ({ from, to });

    it('journal - a new journal is empty at seq 0', () => {
      assert.equal(journal.lastSeq, 0);
      assert.equal(journal.ackedThrough, 0);
      assert.deepEqual(journal.readAfter(0, 100, 1 << 20), []);
      const stats = journal.stats();
      assert.equal(stats.rows, 0);
      assert.equal(stats.payloadBytes, 0);
      assert.equal(stats.oldestTimeMs, null);
    });

    it('journal - gives consecutive seqs in append order and returns every field intact', () => {
      const first = journal.commit([record('a', 1), record('b', 2)]);
      const second = journal.commit([record('a', 3)]);
      assert.deepEqual([first.firstSeq, first.lastSeq, second.firstSeq, second.lastSeq], [1, 2, 3, 3]);
      const rows = journal.readAfter(0, 100, 1 << 20);
      assert.deepEqual(
        rows.map((r) => ({ ...r, payload: Buffer.from(r.payload) })),
        // Rows keep every field but the epoch, which serves only to recognise resends at commit.
        [record('a', 1), record('b', 2), record('a', 3)].map(({ deviceEpoch, ...r }, i) => ({ ...r, seq: i + 1 })),
      );
    });

    it('journal - stores exactly the bytes of a payload that is a view into a larger buffer', () => {
      const big = Buffer.from('0123456789abcdef');
      journal.commit([{ ...record('a', 1), payload: big.subarray(4, 9) }]);
      assert.equal(Buffer.from(journal.readAfter(0, 1, 100)[0]!.payload).toString(), '45678');
    });

    it('journal - readAfter stops at maxRecords and maxBytes but always returns one row', () => {
      journal.commit(Array.from({ length: 10 }, (_, i) => record('a', i, 100)));
      assert.deepEqual(
        journal.readAfter(2, 3, 1 << 20).map((r) => r.seq),
        [3, 4, 5],
      );
      assert.deepEqual(
        journal.readAfter(0, 100, 250).map((r) => r.seq),
        [1, 2],
      );
      assert.deepEqual(
        journal.readAfter(4, 100, 10).map((r) => r.seq),
        [5],
      );
      assert.deepEqual(journal.readAfter(10, 100, 1 << 20), []);
    });

    it('journal - a released range frees its rows and moves the stats', () => {
      journal.commit(Array.from({ length: 5 }, (_, i) => record('a', i + 1, 10)));
      const result = journal.commit([], [range(1, 3)]);
      assert.equal(result.released, 3);
      assert.equal(journal.ackedThrough, 3);
      assert.deepEqual(held(), [4, 5]);
      const stats = journal.stats();
      assert.equal(stats.rows, 2);
      assert.equal(stats.payloadBytes, 20);
      assert.equal(stats.oldestTimeMs, record('a', 4).gatewayTimeMs);
    });

    it('journal - appends and releases commit together', () => {
      journal.commit([record('a', 1), record('a', 2)]);
      const { firstSeq, lastSeq, released } = journal.commit([record('a', 3)], [range(1, 2)]);
      assert.deepEqual({ firstSeq, lastSeq, released }, { firstSeq: 3, lastSeq: 3, released: 2 });
      assert.deepEqual(held(), [3]);
    });

    it('journal - ranges are freed in any order; ackedThrough is the low-water mark below the oldest row held', () => {
      journal.commit(Array.from({ length: 9 }, (_, i) => record('a', i + 1)));
      journal.commit([], [range(7, 9), range(4, 5)]);
      assert.deepEqual(held(), [1, 2, 3, 6]);
      assert.equal(journal.ackedThrough, 0, 'row 1 is still held');
      journal.commit([], [range(1, 3)]);
      assert.equal(journal.ackedThrough, 5);
      journal.commit([], [range(6, 6)]);
      assert.equal(journal.ackedThrough, 9);
      assert.equal(journal.stats().rows, 0);
    });

    it('journal - releasing a range again changes nothing; a range beyond the last seq is refused', () => {
      journal.commit([record('a', 1), record('a', 2), record('a', 3)]);
      journal.commit([], [range(1, 2)]);
      assert.equal(journal.commit([], [range(1, 2)]).released, 0);
      assert.equal(journal.ackedThrough, 2);
      assert.throws(() => journal.commit([], [range(3, 4)]), RangeError);
      assert.throws(() => journal.commit([], [range(3, 2)]), RangeError);
      assert.equal(journal.ackedThrough, 2);
      assert.equal(journal.stats().rows, 1);
    });

    it('journal - drop-oldest: past maxBytes the oldest rows go, as one gap with their exact range and count', () => {
      reopen({ limits: { maxBytes: 1000, maxAgeMs: 0, policy: 'drop-oldest' } });
      journal.commit(Array.from({ length: 8 }, (_, i) => record('a', i + 1, 100)));
      journal.commit([], [range(2, 2)]);
      assert.deepEqual(journal.gaps(), []);
      const result = journal.commit(Array.from({ length: 5 }, (_, i) => record('a', i + 9, 100)));
      // 1200 bytes held: dropping to 95% of 1000 takes rows 1, 3 and 4 (row 2 was released before).
      assert.deepEqual(
        result.gaps.map(({ timeMs, ...g }) => g),
        [{ from: 1, to: 4, reason: 'journal-full', count: 3 }],
      );
      assert.deepEqual(held(), [5, 6, 7, 8, 9, 10, 11, 12, 13]);
      assert.equal(journal.stats().payloadBytes, 900);
      assert.equal(journal.stats().dropped['journal-full'], 3);
      assert.equal(journal.ackedThrough, 4, 'dropped rows are gone: the low-water mark passes them');
      reopen({ limits: { maxBytes: 1000, maxAgeMs: 0, policy: 'drop-oldest' } });
      assert.deepEqual(
        journal.gaps().map(({ timeMs, ...g }) => g),
        [{ from: 1, to: 4, reason: 'journal-full', count: 3 }],
        'gaps survive a restart',
      );
      journal.commit([], [range(1, 4)]);
      assert.deepEqual(journal.gaps(), [], 'releasing the range of a gap (the backend took note of it) forgets it');
    });

    it('journal - reject-new: nothing is dropped, and room says what still fits', () => {
      reopen({ limits: { maxBytes: 1000, maxAgeMs: 0, policy: 'reject-new' } });
      assert.equal(journal.room, 1000);
      journal.commit(Array.from({ length: 7 }, (_, i) => record('a', i + 1, 100)));
      assert.equal(journal.room, 300);
      journal.commit(Array.from({ length: 5 }, (_, i) => record('a', i + 8, 100)));
      assert.equal(journal.room, 0, "a commit past the limit is the appender's to refuse (group commit does)");
      assert.deepEqual(journal.gaps(), []);
      assert.equal(held().length, 12);
      journal.commit([], [range(1, 5)]);
      assert.equal(journal.room, 300);
    });

    it('journal - rows older than maxAgeMs are dropped with a too-old gap', () => {
      let now = record('a', 1).gatewayTimeMs;
      const clock = { now: () => now };
      reopen({ limits: { maxBytes: 0, maxAgeMs: 60_000, policy: 'drop-oldest' }, clock });
      journal.commit([1, 2, 3].map((n) => record('a', n)));
      now += 60_002; // rows 1 and 2 are now older than 60 s, row 3 is exactly 60 s old
      journal.commit([{ ...record('a', 4), gatewayTimeMs: now }]);
      assert.deepEqual(
        journal.gaps().map(({ timeMs, ...g }) => g),
        [{ from: 1, to: 2, reason: 'too-old', count: 2 }],
      );
      assert.deepEqual(held(), [3, 4]);
    });

    it('journal - seqs are never reused, even after every row was freed and the journal reopened', () => {
      journal.commit([record('a', 1), record('a', 2)]);
      journal.commit([], [range(1, 2)]);
      reopen();
      assert.equal(journal.lastSeq, 2);
      assert.equal(journal.ackedThrough, 2);
      assert.deepEqual(seqs(journal.commit([record('a', 3)])), [3, 3]);
    });

    it('journal - committed rows and the ack cursor survive a reopen', () => {
      journal.commit(Array.from({ length: 4 }, (_, i) => record(`d${i}`, i, 7)));
      journal.commit([], [range(1, 1)]);
      reopen();
      const stats = journal.stats();
      assert.deepEqual([stats.rows, stats.payloadBytes, stats.lastSeq, stats.ackedThrough], [3, 21, 4, 1]);
      assert.deepEqual(
        journal.readAfter(0, 100, 1 << 20).map((r) => r.deviceId),
        ['d1', 'd2', 'd3'],
      );
    });

    it('journal - a commit that fails changes nothing', () => {
      journal.commit([record('a', 1)]);
      const bad = { ...record('b', 2), deviceId: null as unknown as string };
      assert.throws(() => journal.commit([record('a', 2), bad], [range(1, 1)]));
      assert.equal(journal.lastSeq, 1);
      assert.equal(journal.ackedThrough, 0);
      assert.equal(journal.stats().rows, 1);
      assert.deepEqual(
        journal.readAfter(0, 100, 1 << 20).map((r) => r.seq),
        [1],
      );
      assert.deepEqual(seqs(journal.commit([record('a', 3)])), [2, 2]);
    });

    const sdk = (deviceId: string, epoch: string, deviceSeq: number) => ({
      ...record(deviceId, deviceSeq),
      deviceEpoch: epoch,
      deviceSeq,
    });

    it('journal - a device-SDK resend (same device, epoch and seq) is stored once, in one commit or across commits and reopens', () => {
      const first = journal.commit([sdk('d1', 'e1', 1), sdk('d1', 'e1', 2), sdk('d1', 'e1', 2), sdk('d2', 'e9', 1)]);
      assert.deepEqual([first.stored.length, first.duplicates, first.firstSeq, first.lastSeq], [3, 1, 1, 3]);
      const again = journal.commit([sdk('d1', 'e1', 1), sdk('d1', 'e1', 2), sdk('d1', 'e1', 3)]);
      assert.deepEqual([again.stored.map((r) => r.deviceSeq), again.duplicates, again.firstSeq], [[3], 2, 4]);
      reopen();
      assert.equal(journal.lastDeviceSeq('d1', 'e1'), 3);
      assert.equal(journal.commit([sdk('d1', 'e1', 3)]).duplicates, 1);
      assert.deepEqual(
        journal.readAfter(0, 100, 1 << 20).map((r) => `${r.deviceId}:${r.deviceSeq}`),
        ['d1:1', 'd1:2', 'd2:1', 'd1:3'],
      );
    });

    it('journal - a new epoch starts afresh; MQTT records (no device seq) are never taken for resends', () => {
      journal.commit([sdk('d1', 'old', 5)]);
      assert.equal(journal.lastDeviceSeq('d1', 'new'), 0);
      assert.equal(journal.commit([sdk('d1', 'new', 1)]).stored.length, 1);
      assert.equal(journal.lastDeviceSeq('d1', 'new'), 1);
      assert.equal(journal.lastDeviceSeq('d1', 'old'), 0, 'only the current epoch is remembered');
      assert.equal(journal.commit([record('m', 1), record('m', 1)]).stored.length, 2);
    });

    it('journal - a failed commit does not remember the device seqs it carried', () => {
      const bad = { ...record('b', 2), deviceId: null as unknown as string };
      assert.throws(() => journal.commit([sdk('d1', 'e1', 1), bad]));
      assert.equal(journal.lastDeviceSeq('d1', 'e1'), 0);
      assert.equal(journal.commit([sdk('d1', 'e1', 1)]).stored.length, 1);
    });

    // Several upstreams: routes decided before the commit (bit i: the i-th upstream), each upstream's view.
    const A = 0;
    const B = 1;
    const severalUpstreams = (options: OpenOptions = {}) => reopen({ upstreams: ['a', 'b'], ...options });
    const seqsOf = (rows: Array<{ seq: number }>) => rows.map((r) => r.seq);

    it('journal - several upstreams: each reads only what its route named; a row goes once every upstream it was routed to acked it', () => {
      severalUpstreams();
      const result = journal.commit(
        [record('d', 1), record('d', 2), record('d', 3), record('d', 4)],
        [],
        [0b01, 0b10, 0b11, 0b10],
      );
      assert.deepEqual(result.routes, [0b01, 0b10, 0b11, 0b10]);
      assert.deepEqual(seqsOf(journal.upstream(A).readAfter(0, 10, 1 << 20)), [1, 3]);
      assert.deepEqual(seqsOf(journal.upstream(B).readAfter(0, 10, 1 << 20)), [2, 3, 4]);
      assert.deepEqual(seqsOf(journal.readAfter(0, 10, 1 << 20, undefined, B)), [2, 3, 4], 'readAfter by upstream, the same');
      assert.deepEqual(journal.backlogOf(A), {
        rows: 2,
        payloadBytes: 32,
        ackedThrough: 0,
        oldestTimeMs: record('d', 1).gatewayTimeMs,
      });

      journal.commit([], [{ from: 1, to: 4, upstream: B }]);
      assert.deepEqual(held(), [1, 3], 'the rows A still waits for stay');
      assert.equal(journal.upstream(B).ackedThrough, 4);
      assert.equal(journal.upstream(A).ackedThrough, 0);
      assert.equal(journal.ackedThrough, 0, 'the low-water mark waits for the slowest upstream');
      journal.commit([], [{ from: 3, to: 3, upstream: A }]);
      assert.deepEqual(held(), [1]);
      assert.equal(journal.upstream(A).ackedThrough, 0, 'a hole above is not a cursor');
      journal.commit([], [{ from: 1, to: 1, upstream: A }]);
      assert.deepEqual([journal.stats().rows, journal.ackedThrough, journal.upstream(A).ackedThrough], [0, 4, 4]);
    });

    it('journal - several upstreams: what each waits for survives a reopen; without routes a record goes to every upstream', () => {
      severalUpstreams();
      journal.commit([record('d', 1), record('d', 2)], [], [0b01, 0b10]);
      journal.commit([record('d', 3)]);
      journal.commit([record('d', 4)], [], [EVERY_UPSTREAM]);
      severalUpstreams();
      assert.deepEqual(seqsOf(journal.upstream(A).readAfter(0, 10, 1 << 20)), [1, 3, 4]);
      assert.deepEqual(seqsOf(journal.upstream(B).readAfter(0, 10, 1 << 20)), [2, 3, 4]);
      assert.deepEqual([journal.backlogOf(A).rows, journal.backlogOf(B).rows], [3, 3]);
    });

    it('journal - several upstreams: a route naming no configured upstream is refused, and nothing changes', () => {
      severalUpstreams();
      assert.throws(() => journal.commit([record('d', 1)], [], [0b100]), RangeError);
      assert.throws(() => journal.commit([record('d', 1)], [], [0]), RangeError);
      assert.deepEqual([journal.lastSeq, journal.stats().rows], [0, 0]);
    });

    it('journal - several upstreams: a dropped prefix is a gap only for the upstreams that were still waiting for it', () => {
      severalUpstreams({ limits: { maxBytes: 40, maxAgeMs: 0, policy: 'drop-oldest' } });
      journal.commit([record('d', 1), record('d', 2)], [], [0b01, 0b01]);
      journal.commit([record('d', 3), record('d', 4)], [], [0b11, 0b11]); // 64 bytes over a 40-byte limit: rows 1 and 2 go
      assert.deepEqual(
        journal
          .upstream(A)
          .gaps()
          .map((g) => [g.from, g.to, g.reason, g.count]),
        [[1, 2, 'journal-full', 2]],
      );
      assert.deepEqual(journal.upstream(B).gaps(), [], 'B was never waiting for rows 1 and 2');
      journal.commit([], [{ from: 1, to: 2, upstream: A }]);
      assert.deepEqual(journal.gaps(), [], 'acknowledged by the one upstream that had to hear of it');
    });

    it('journal - renumbering: moveAbove moves the unacked rows and gaps above the seqs a backend holds, in order; welcomed is remembered', () => {
      reopen({ limits: { maxBytes: 40, maxAgeMs: 0, policy: 'drop-oldest' } });
      assert.equal(journal.welcomed, false, 'a new journal');
      // 64 bytes over a 40-byte limit: rows 1 and 2 dropped, as a gap.
      journal.commit([record('d', 1), record('d', 2), record('d', 3), record('d', 4)]);
      assert.deepEqual(held(), [3, 4]);
      assert.equal(journal.moveAbove(2), 0, 'nothing at or below the low-water mark');
      const payloads = journal.readAfter(0, 10, 1 << 20).map((r) => Buffer.from(r.payload).toString('hex'));
      assert.equal(journal.moveAbove(100), 98);
      assert.deepEqual([journal.ackedThrough, journal.lastSeq], [100, 102]);
      assert.deepEqual(held(), [101, 102]);
      assert.deepEqual(
        journal.readAfter(0, 10, 1 << 20).map((r) => Buffer.from(r.payload).toString('hex')),
        payloads,
        'the same rows, in the same order',
      );
      assert.deepEqual(
        journal
          .upstream(0)
          .readAfter(0, 10, 1 << 20)
          .map((r) => r.seq),
        [101, 102],
        "the upstream's view follows",
      );
      journal.markWelcomed();
      assert.equal(journal.commit([record('d', 5)]).firstSeq, 103);
      reopen({ limits: { maxBytes: 40, maxAgeMs: 0, policy: 'drop-oldest' } });
      assert.deepEqual([journal.welcomed, journal.lastSeq], [true, 103]);
    });

    it("journal - dead letters: kept in the journal's table until dropped, across a reopen; a replay goes to the upstreams that refused it", () => {
      severalUpstreams();
      journal.commit([record('d', 1), record('d', 2)], [], [0b11, 0b11]);
      const [first, second] = journal.readAfter(0, 10, 1 << 20);
      const letters = new DeadLetters(journal.deadLetters);
      letters.add(first!, 'not JSON', 1000, 'b');
      letters.add(first!, 'not JSON either', 1001, 'a');
      letters.add(second!, 'too big', 1002, 'b');
      journal.commit([], [{ from: 1, to: 2, upstream: B }]);
      journal.commit([], [{ from: 1, to: 1, upstream: A }]);
      severalUpstreams();
      const again = new DeadLetters(journal.deadLetters);
      assert.deepEqual(
        again.list().map((l) => [l.seq, l.reason, l.upstreams, l.replay, Buffer.from(l.payload).equals(first!.payload)]),
        [
          [1, 'not JSON either', ['b', 'a'], false, true],
          [2, 'too big', ['b'], false, false],
        ],
      );
      assert.ok(again.markReplay(2));
      assert.ok(!again.markReplay(99));
      const { records, done } = again.takeReplays(5000);
      assert.deepEqual(
        records.map((r) => [r.deviceId, r.upstreams, r.gatewayTimeMs]),
        [['d', ['b'], 5000]],
      );
      done();
      assert.deepEqual(
        again.list().map((l) => l.seq),
        [1],
      );
      assert.ok(again.drop(1));
      assert.deepEqual(journal.deadLetters.list(), []);
    });
  });
}

const seqs = (result: { firstSeq: number; lastSeq: number }) => [result.firstSeq, result.lastSeq];
