/**
 * The seq rules of one device-link stream (protos/fleetgate/v1/device.proto): after the Welcome, first resends of
 * seqs at or below its lastDurableSeq (acked again, not stored), then new seqs: the first anywhere above the
 * durable one (its predecessors may have gone to another gateway), each next one the last + 1. A seq that goes
 * back, or one skipped after new seqs began, ends the stream.
 *
 * check() answers with a number, not an object: it runs for every Telemetry message.
 */
import { DeviceLinkRefusedError } from '../errors.ts';

export const SEQ = {
  /** At or below the durable seq, before any new one: in the journal already. */
  RESENT: 0,
  /** The next seq. */
  NEW: 1,
  /** The first new seq, above durable + 1: seqs this gateway never saw (logged, nothing to resend). */
  NEW_AFTER_UNSEEN: 2,
  /** Refused: seq 0. */
  ZERO: 3,
  /** Refused: at or below the last seq taken. */
  NOT_INCREASING: 4,
  /** Refused: above the last + 1, after new seqs began. */
  SKIPPED: 5,
} as const;
export type SeqCheck = (typeof SEQ)[keyof typeof SEQ];

export class SeqRules {
  /** Welcome's lastDurableSeq: seqs at or below it are resends. */
  private durableSeq = 0;
  /** The last new seq taken on this stream (durableSeq until one is). */
  private lastSeq = 0;
  /** A seq above durableSeq was taken: from now on each seq is lastSeq + 1. */
  private takingNew = false;

  /** The stream resumes after `lastDurableSeq` (the Welcome says so to the device). */
  resume(lastDurableSeq: number): void {
    this.durableSeq = this.lastSeq = lastDurableSeq;
  }

  /** What `seq` is on this stream; nothing changes until take(). */
  check(seq: number): SeqCheck {
    if (seq < 1) return SEQ.ZERO;
    if (!this.takingNew && seq <= this.durableSeq) return SEQ.RESENT;
    const expected = this.lastSeq + 1;
    if (seq < expected) return SEQ.NOT_INCREASING;
    if (seq === expected) return SEQ.NEW;
    return this.takingNew ? SEQ.SKIPPED : SEQ.NEW_AFTER_UNSEEN;
  }

  /** A new seq, checked, is taken. */
  take(seq: number): void {
    this.takingNew = true;
    this.lastSeq = seq;
  }

  /** The seqs this gateway never saw before `seq` (check() said NEW_AFTER_UNSEEN). */
  unseenBefore(seq: number): { from: number; to: number } {
    return { from: this.lastSeq + 1, to: seq - 1 };
  }

  /** Why `seq` is refused, naming the seq expected (check() said ZERO, NOT_INCREASING or SKIPPED). */
  refusal(seq: number, check: SeqCheck): DeviceLinkRefusedError {
    const expected = this.lastSeq + 1;
    if (check === SEQ.ZERO) return new DeviceLinkRefusedError('seq-not-increasing', 'seq 0: seqs start at 1');
    if (check === SEQ.SKIPPED) {
      return new DeviceLinkRefusedError(
        'seq-skipped',
        `seq ${seq} after ${this.lastSeq}: expected ${expected}; seqs are never skipped`,
      );
    }
    return new DeviceLinkRefusedError(
      'seq-not-increasing',
      `seq ${seq} after ${this.lastSeq}: expected ${expected}; seqs must increase along a stream (resends of seqs up to ${this.durableSeq}, the last durable one, may come only before new ones)`,
    );
  }
}
