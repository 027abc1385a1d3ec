/** A device-link stream's seq rules (gateway/src/device-link/seq-rules.ts), without a stream. */
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { SEQ, SeqRules } from '../../gateway/src/device-link/seq-rules.ts';

/** A stream welcomed with lastDurableSeq `durable` that took `taken` (each checked first, as the session does). */
function stream(durable: number, ...taken: number[]): SeqRules {
  const rules = new SeqRules();
  rules.resume(durable);
  for (const seq of taken) {
    assert.ok([SEQ.NEW, SEQ.NEW_AFTER_UNSEEN].includes(rules.check(seq) as 1 | 2), `seq ${seq} is new`);
    rules.take(seq);
  }
  return rules;
}

describe('device link seqs', function () {
  it('device link seqs - at or below the durable seq, before any new one, a seq is a resend; then durable + 1 is new', () => {
    const rules = stream(5);
    assert.equal(rules.check(1), SEQ.RESENT);
    assert.equal(rules.check(5), SEQ.RESENT);
    assert.equal(rules.check(6), SEQ.NEW);
  });

  it('device link seqs - the first new seq may lie anywhere above the durable one: the seqs between were never seen here', () => {
    const rules = stream(5);
    assert.equal(rules.check(9), SEQ.NEW_AFTER_UNSEEN);
    assert.deepEqual(rules.unseenBefore(9), { from: 6, to: 8 });
    rules.take(9);
    assert.equal(rules.check(10), SEQ.NEW);
  });

  it('device link seqs - after a new seq, a resend, a repeat or a skip is refused, naming the seq expected', () => {
    const rules = stream(5, 6, 7);
    for (const seq of [3, 5, 7]) {
      assert.equal(rules.check(seq), SEQ.NOT_INCREASING, `seq ${seq}`);
      const refusal = rules.refusal(seq, SEQ.NOT_INCREASING);
      assert.equal(refusal.reason, 'seq-not-increasing');
      assert.equal(refusal.code, status.INVALID_ARGUMENT);
      assert.match(refusal.details, new RegExp(`^seq ${seq} after 7: expected 8; seqs must increase`));
    }
    assert.equal(rules.check(9), SEQ.SKIPPED);
    const skipped = rules.refusal(9, SEQ.SKIPPED);
    assert.equal(skipped.reason, 'seq-skipped');
    assert.equal(skipped.details, 'seq 9 after 7: expected 8; seqs are never skipped');
  });

  it('device link seqs - seq 0 is refused, whatever came before', () => {
    for (const rules of [stream(0), stream(5), stream(5, 6)]) {
      assert.equal(rules.check(0), SEQ.ZERO);
      assert.equal(rules.refusal(0, SEQ.ZERO).details, 'seq 0: seqs start at 1');
    }
  });

  it('device link seqs - a new device (durable 0) starts anywhere from 1', () => {
    assert.equal(stream(0).check(1), SEQ.NEW);
    assert.equal(stream(0).check(40), SEQ.NEW_AFTER_UNSEEN);
  });
});
