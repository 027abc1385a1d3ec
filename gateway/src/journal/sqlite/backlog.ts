/**
 * What the journal holds for each upstream, with several: the rows and bytes routed to it that it has not
 * acknowledged (counted in memory, moved by each commit's BacklogDelta once it committed), and its cursor:
 * every row at or below it that was routed to it, it acknowledged. With one upstream the journal's own
 * counters and low-water mark say all of it.
 */
import type { SqliteDatabase } from '@fleetgate/core/sqlite';
import type { UpstreamBacklog } from '../journal.ts';
import type { UpstreamBits } from './upstream-bits.ts';

/** Rows and bytes each upstream stopped (or started) waiting for in one transaction, in configuration order. */
export type BacklogDelta = Array<{ rows: number; bytes: number }>;

/** The journal's own counters, which the backlog of its one upstream is. */
export interface HeldRows {
  rows: number;
  payloadBytes: number;
  lastSeq: number;
  ackedThrough: number;
}

/** Rows held with the same `pending`: how many, their bytes, their seqs' bounds. */
export interface PendingGroup {
  pending: number;
  rows: number;
  bytes: number;
  maxSeq: number;
  minSeq: number;
}

/**
 * At open: the rows held, grouped by `pending`, and the journal's counters. lastSeq = max(meta.last_seq, max(seq)),
 * so it never goes backwards after a crash (journal-sqlite.ts says why); the low-water mark is just below the
 * oldest row held.
 */
export function countHeld(db: SqliteDatabase, meta: ReadonlyMap<string, number>): { groups: PendingGroup[]; held: HeldRows } {
  const groups = db
    .prepare<[], PendingGroup>(
      'SELECT pending, count(*) AS rows, coalesce(sum(length(payload)), 0) AS bytes, max(seq) AS maxSeq, min(seq) AS minSeq FROM journal GROUP BY pending',
    )
    .all();
  let rows = 0;
  let payloadBytes = 0;
  let maxSeq = 0;
  let minSeq: number | null = null;
  for (const group of groups) {
    rows += group.rows;
    payloadBytes += group.bytes;
    maxSeq = Math.max(maxSeq, group.maxSeq);
    minSeq = Math.min(minSeq ?? Infinity, group.minSeq);
  }
  return { groups, held: heldRows(meta, rows, payloadBytes, minSeq, maxSeq) };
}

/** The journal's counters from what it holds and meta; `minSeq` null when it holds nothing. */
export function heldRows(
  meta: ReadonlyMap<string, number>,
  rows: number,
  payloadBytes: number,
  minSeq: number | null,
  maxSeq: number,
): HeldRows {
  const lastSeq = Math.max(meta.get('last_seq') ?? 0, maxSeq, meta.get('acked_through') ?? 0);
  return { rows, payloadBytes, lastSeq, ackedThrough: minSeq === null ? lastSeq : minSeq - 1 };
}

export class Backlogs {
  private readonly each: Array<{ rows: number; bytes: number; cursor: number }>;
  private readonly statements;

  constructor(
    db: SqliteDatabase,
    private readonly bits: UpstreamBits,
  ) {
    this.each = Array.from({ length: bits.count }, () => ({ rows: 0, bytes: 0, cursor: 0 }));
    this.statements = {
      firstPendingFor: db.prepare<[number, number], { seq: number; t: number }>(
        'SELECT seq, gateway_time AS t FROM journal WHERE seq > ? AND (pending & ?) != 0 ORDER BY seq LIMIT 1',
      ),
      oldestTime: db.prepare<[], { t: number }>('SELECT gateway_time AS t FROM journal ORDER BY seq LIMIT 1'),
    };
  }

  /** At open: the rows held, grouped by `pending`. */
  count(groups: ReadonlyArray<{ pending: number; rows: number; bytes: number }>, ackedThrough: number): void {
    for (const group of groups) {
      this.bits.forEachIn(group.pending, (i) => {
        this.each[i]!.rows += group.rows;
        this.each[i]!.bytes += group.bytes;
      });
    }
    this.resetCursors(ackedThrough);
  }

  /** At open after a clean close: each upstream's rows and bytes as they stood (by bit; an upstream new since has none). */
  restore(snapshot: ReadonlyArray<{ bit: number; rows: number; bytes: number }>, ackedThrough: number): void {
    this.each.forEach((b, i) => {
      const kept = snapshot.find((s) => s.bit === this.bits.of(i));
      b.rows = kept?.rows ?? 0;
      b.bytes = kept?.bytes ?? 0;
    });
    this.resetCursors(ackedThrough);
  }

  /** For a clean close: each upstream's rows and bytes, by bit (with one upstream, the journal's own counters). */
  snapshot(held: HeldRows): Array<{ bit: number; rows: number; bytes: number }> {
    if (this.bits.count === 1) return [{ bit: this.bits.of(0), rows: held.rows, bytes: held.payloadBytes }];
    return this.each.map((b, i) => ({ bit: this.bits.of(i), rows: b.rows, bytes: b.bytes }));
  }

  /** A delta for one transaction to fill in; undefined with one upstream (nothing to count apart). */
  newDelta(): BacklogDelta | undefined {
    return this.bits.count > 1 ? this.each.map(() => ({ rows: 0, bytes: 0 })) : undefined;
  }

  /** After COMMIT: what the transaction changed. */
  apply(delta: BacklogDelta | undefined): void {
    delta?.forEach(({ rows, bytes }, i) => {
      this.each[i]!.rows += rows;
      this.each[i]!.bytes += bytes;
    });
  }

  /** Every cursor back to the low-water mark (the rows were renumbered, or the journal opened). */
  resetCursors(ackedThrough: number): void {
    for (const b of this.each) b.cursor = ackedThrough;
  }

  /** The gatewayTimeMs of the oldest row held, or null when none is. */
  oldestTime(held: HeldRows): number | null {
    return held.rows > 0 ? (this.statements.oldestTime.get()?.t ?? null) : null;
  }

  /**
   * What the journal holds for `upstream`. The cursor only moves forward (rows never gain upstreams), so
   * finding it again reads each row about once.
   */
  of(upstream: number, held: HeldRows): UpstreamBacklog {
    if (this.bits.count === 1) {
      return {
        rows: held.rows,
        payloadBytes: held.payloadBytes,
        ackedThrough: held.ackedThrough,
        oldestTimeMs: this.oldestTime(held),
      };
    }
    const backlog = this.each[upstream]!;
    if (backlog.rows === 0) {
      backlog.cursor = held.lastSeq;
      return { rows: 0, payloadBytes: 0, ackedThrough: held.lastSeq, oldestTimeMs: null };
    }
    const first = this.statements.firstPendingFor.get(Math.max(backlog.cursor, held.ackedThrough), this.bits.of(upstream));
    backlog.cursor = first ? first.seq - 1 : held.lastSeq;
    return { rows: backlog.rows, payloadBytes: backlog.bytes, ackedThrough: backlog.cursor, oldestTimeMs: first?.t ?? null };
  }
}
