import assert from 'node:assert/strict';
import { Backoff } from '@fleetgate/core';
import { fakeTime } from '../support/fake-time.ts';

describe('backoff', function () {
  it('backoff - delays are uniform below a ceiling that doubles up to the cap (full jitter)', () => {
    const draws = [0.999, 0.5, 0, 0.999, 0.999, 0.999, 0.999];
    const backoff = new Backoff({ initialMs: 100, maxMs: 1000, multiplier: 2, random: () => draws.shift()! });
    assert.deepEqual(
      Array.from({ length: 7 }, () => backoff.nextDelayMs()),
      [99, 100, 0, 799, 999, 999, 999], // ceilings 100, 200, 400, 800, then the 1000 cap
    );
  });

  it('backoff - schedule fires after the drawn delay, not before, and reset starts the curve again', () => {
    const time = fakeTime();
    const backoff = new Backoff({ initialMs: 100, maxMs: 10_000, multiplier: 2, random: () => 0.5, timers: time.timers });
    let fired = 0;
    assert.equal(
      backoff.schedule(() => fired++),
      50,
    );
    time.tick(49);
    assert.equal(fired, 0);
    assert.equal(backoff.pending, true);
    time.tick(1);
    assert.equal(fired, 1);
    assert.equal(backoff.pending, false);
    assert.equal(
      backoff.schedule(() => fired++),
      100,
    );
    assert.equal(
      backoff.schedule(() => fired++),
      200,
      'a new schedule replaces the pending one',
    );
    time.tick(1000);
    assert.equal(fired, 2);
    backoff.reset();
    assert.equal(backoff.attempts, 0);
    assert.equal(
      backoff.schedule(() => fired++),
      50,
    );
  });

  it('backoff - cancel stops a pending retry', () => {
    const time = fakeTime();
    const backoff = new Backoff({ initialMs: 100, maxMs: 1000, multiplier: 2, random: () => 0.9, timers: time.timers });
    let fired = false;
    backoff.schedule(() => (fired = true));
    backoff.cancel();
    time.tick(10_000);
    assert.equal(fired, false);
  });

  it("backoff - timers are unref'd so a pending retry never keeps a process alive", () => {
    let unrefed = false;
    const backoff = new Backoff({
      initialMs: 100,
      maxMs: 1000,
      multiplier: 2,
      timers: { setTimeout: () => ({ unref: () => (unrefed = true) }), clearTimeout: () => {} },
    });
    backoff.schedule(() => {});
    assert.equal(unrefed, true);
  });

  it('backoff - refuses settings that cannot work', () => {
    assert.throws(() => new Backoff({ initialMs: 0, maxMs: 10, multiplier: 2 }), RangeError);
    assert.throws(() => new Backoff({ initialMs: 100, maxMs: 10, multiplier: 2 }), RangeError);
    assert.throws(() => new Backoff({ initialMs: 1, maxMs: 10, multiplier: 0.5 }), RangeError);
  });
});
