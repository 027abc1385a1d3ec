/**
 * The batches of a session that the backend has not acknowledged yet, by their range. An Ack names one batch
 * (or gap) by its range, or, with from_seq 0, everything through a seq; the ledger says what an Ack settles, or
 * why it cannot be taken: freeing rows the backend does not have would lose them, so an ack for anything not
 * in flight is a protocol error and ends the session (uplink.proto, Ack).
 */
import { type Clock, systemClock } from '@fleetgate/core';
import type { Ack } from '@fleetgate/protos';
import type { JournalRecord, SeqRange } from '../journal/journal.ts';
import { UplinkProtocolError } from '../errors.ts';

export type Lane = 'live' | 'backlog' | 'retry';

export interface Batch extends SeqRange {
  lane: Lane;
  records: JournalRecord[];
  /** When it was written to the stream (Clock.now()). */
  sentAtMs: number;
}

/** What the session knows beside the ledger when it judges an Ack. */
export interface AckContext {
  /** The highest seq this session sent without a hole (a cumulative ack can cover no more). */
  contiguousThrough: number;
  /** The journal's low-water mark for this upstream: a cumulative ack frees from just above it. */
  ackedThrough: number;
  /** Is from..to a gap this session reported? */
  isGapSent(from: number, to: number): boolean;
}

/** An Ack taken (the range it frees, the batches it settled, in the order sent), or the protocol error it is. */
export type AckOutcome =
  { ok: true; from: number; through: number; settled: Batch[] } | { ok: false; error: UplinkProtocolError };

export class InflightLedger {
  /** By their last seq. */
  private batches = new Map<number, Batch>();

  get size(): number {
    return this.batches.size;
  }

  constructor(private readonly clock: Clock = systemClock) {}

  /** A batch written to the stream now. */
  add(batch: Omit<Batch, 'sentAtMs'>): void {
    this.batches.set(batch.to, { ...batch, sentAtMs: this.clock.now() });
  }

  /** Batches of `lane` in flight. */
  on(lane: Lane): number {
    let n = 0;
    for (const batch of this.batches.values()) if (batch.lane === lane) n++;
    return n;
  }

  /**
   * Settles an Ack: one batch or gap by its range, or (from_seq 0) everything through a seq, but then only as
   * far as this session sent without a hole (with lanes, a cumulative ack over the live lane would cover backlog
   * rows not sent yet).
   */
  settle(ack: Ack, context: AckContext): AckOutcome {
    const through = ack.throughSeq;
    let from = ack.fromSeq;
    if (from === 0) {
      const contiguous = context.contiguousThrough;
      if (through > contiguous)
        return {
          ok: false,
          error: new UplinkProtocolError(`ack through ${through}, but only ${contiguous} was sent without a hole`),
        };
      from = context.ackedThrough + 1;
    } else if (this.batches.get(through)?.from !== from && !context.isGapSent(from, through)) {
      return { ok: false, error: new UplinkProtocolError(`ack for ${from}..${through}, which is no batch or gap in flight`) };
    }
    const settled: Batch[] = [];
    for (const [last, batch] of this.batches) {
      if (batch.from >= from && last <= through) {
        this.batches.delete(last);
        settled.push(batch);
      }
    }
    return { ok: true, from, through, settled };
  }

  /** The session ended: what was in flight is sent again by the next one. */
  clear(): void {
    this.batches = new Map();
  }
}

/** from..to without the given seqs, as ranges. */
export function splitAround(from: number, to: number, holes: readonly number[]): SeqRange[] {
  const ranges: SeqRange[] = [];
  let start = from;
  for (const hole of holes.filter((h) => h >= from && h <= to).sort((a, b) => a - b)) {
    if (hole > start) ranges.push({ from: start, to: hole - 1 });
    start = hole + 1;
  }
  if (start <= to) ranges.push({ from: start, to });
  return ranges;
}
