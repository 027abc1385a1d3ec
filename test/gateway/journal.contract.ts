import assert from 'node:assert/strict';
import type { Clock } from '@fleetgate/core';
import type { Journal, JournalLimits, NewRecord } from '../../gateway/src/journal/journal.ts';
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
  });
}

const seqs = (result: { firstSeq: number; lastSeq: number }) => [result.firstSeq, result.lastSeq];
