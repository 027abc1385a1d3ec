import assert from 'node:assert/strict';
import { DurationHistogram, quantileMs } from '@fleetgate/core';

describe('duration histogram', function () {
  this.timeout(5_000);

  it('histogram - each observation in the first bucket whose bound it does not exceed, +Inf above them all', () => {
    const h = new DurationHistogram([1, 10]);
    h.observe(0.25);
    h.observe(1); // on the bound: that bucket (Prometheus' le)
    h.observe(1.5, 3); // a batch of three records that each took as long
    h.observe(50);
    assert.deepEqual(h.snapshot(), { boundsMs: [1, 10], counts: [2, 3, 1], sumMs: 0.25 + 1 + 4.5 + 50, count: 6 });
  });

  it('histogram - a snapshot is a copy: later observations do not change it', () => {
    const h = new DurationHistogram([1]);
    const before = h.snapshot();
    h.observe(5);
    assert.deepEqual(before.counts, [0, 0]);
    assert.equal(h.snapshot().count, 1);
  });

  it('histogram - quantiles interpolate inside the bucket as histogram_quantile does; none when empty', () => {
    const h = new DurationHistogram([10, 20]);
    assert.equal(quantileMs(h.snapshot(), 0.5), null);
    h.observe(5, 50);
    h.observe(15, 50);
    assert.equal(quantileMs(h.snapshot(), 0.5), 10);
    assert.equal(quantileMs(h.snapshot(), 0.75), 15);
    assert.equal(quantileMs(h.snapshot(), 0.99), 19.8);
    h.observe(99, 900);
    assert.equal(quantileMs(h.snapshot(), 0.999), 20, 'the +Inf bucket answers its lower bound');
  });
});
