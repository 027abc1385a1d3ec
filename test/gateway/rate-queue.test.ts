import assert from 'node:assert/strict';
import { RateQueue } from '../../gateway/src/ingress/rate-queue.ts';
import { fakeTime } from '../support/fake-time.ts';

describe('rate queue', function () {
  it('rate queue - a burst goes at once, the rest at the sustained rate, in order', () => {
    const time = fakeTime();
    const queue = new RateQueue({ perSecond: 10, burst: 3 }, time.clock, time.timers);
    const done: number[] = [];
    const waited = Array.from({ length: 7 }, (_, i) => queue.submit(() => done.push(i)));
    assert.deepEqual(waited, [false, false, false, true, true, true, true]);
    assert.deepEqual(done, [0, 1, 2]);
    time.tick(99);
    assert.deepEqual(done, [0, 1, 2]);
    time.tick(1);
    assert.deepEqual(done, [0, 1, 2, 3]);
    time.tick(300);
    assert.deepEqual(done, [0, 1, 2, 3, 4, 5, 6]);
  });

  it('rate queue - once idle the bucket refills to the burst, no further', () => {
    const time = fakeTime();
    const queue = new RateQueue({ perSecond: 10, burst: 2 }, time.clock, time.timers);
    for (let i = 0; i < 2; i++) queue.submit(() => {});
    time.tick(10_000);
    const done: number[] = [];
    const waited = [0, 1, 2].map((i) => queue.submit(() => done.push(i)));
    assert.deepEqual(waited, [false, false, true]);
  });
});
