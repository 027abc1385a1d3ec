/**
 * Freeing what an upstream acknowledged, inside the commit's transaction. With several upstreams a row goes
 * once no upstream it was routed to still waits for it: a range acknowledged by one upstream clears its bit and
 * deletes the rows that waited for it alone; a range released for none in particular (a dead letter every
 * upstream gave up on) goes whoever waits for it. Gaps inside the range go the same way.
 */
import type { SqliteDatabase } from '@fleetgate/core/sqlite';
import type { Release } from '../journal.ts';
import type { BacklogDelta } from './backlog.ts';
import type { UpstreamBits } from './upstream-bits.ts';

type ForBit = { from: number; to: number; bit: number };

export class Releases {
  private readonly statements;

  constructor(
    db: SqliteDatabase,
    private readonly bits: UpstreamBits,
  ) {
    this.statements = {
      measureRange: db.prepare<[number, number], { rows: number; bytes: number }>(
        'SELECT count(*) AS rows, coalesce(sum(length(payload)), 0) AS bytes FROM journal WHERE seq BETWEEN ? AND ?',
      ),
      deleteRange: db.prepare('DELETE FROM journal WHERE seq BETWEEN ? AND ?'),
      deleteGapsIn: db.prepare('DELETE FROM gaps WHERE from_seq >= ? AND to_seq <= ?'),
      // Several upstreams: measuring and freeing for one of them (its bit).
      measureRangeFor: db.prepare<ForBit, { rows: number; bytes: number; freedRows: number; freedBytes: number }>(
        `SELECT count(*) AS rows, coalesce(sum(length(payload)), 0) AS bytes, coalesce(sum(pending = @bit), 0) AS freedRows,
           coalesce(sum(CASE WHEN pending = @bit THEN length(payload) ELSE 0 END), 0) AS freedBytes
         FROM journal WHERE seq BETWEEN @from AND @to AND (pending & @bit) != 0`,
      ),
      measureRangeByPending: db.prepare<[number, number], { pending: number; rows: number; bytes: number }>(
        'SELECT pending, count(*) AS rows, coalesce(sum(length(payload)), 0) AS bytes FROM journal WHERE seq BETWEEN ? AND ? GROUP BY pending',
      ),
      deleteRangeFor: db.prepare<ForBit>('DELETE FROM journal WHERE seq BETWEEN @from AND @to AND pending = @bit'),
      clearRangeFor: db.prepare<ForBit>(
        'UPDATE journal SET pending = pending & ~@bit WHERE seq BETWEEN @from AND @to AND (pending & @bit) != 0',
      ),
      clearGapsFor: db.prepare<ForBit>('UPDATE gaps SET pending = pending & ~@bit WHERE from_seq >= @from AND to_seq <= @to'),
      deleteClearedGaps: db.prepare<[number, number]>('DELETE FROM gaps WHERE from_seq >= ? AND to_seq <= ? AND pending = 0'),
    };
  }

  /**
   * Frees a range (`upstream`: the one that acknowledged it; without it, for every one). Returns the rows deleted
   * and their bytes; `delta` (several upstreams) learns what each upstream stopped waiting for.
   */
  free({ from, to, upstream }: Release, delta: BacklogDelta | undefined): { rows: number; bytes: number } {
    const s = this.statements;
    if (!delta) {
      const measured = s.measureRange.get(from, to)!;
      s.deleteRange.run(from, to);
      s.deleteGapsIn.run(from, to);
      return measured;
    }
    if (upstream === undefined) {
      let rows = 0;
      let bytes = 0;
      for (const group of s.measureRangeByPending.all(from, to)) {
        rows += group.rows;
        bytes += group.bytes;
        this.bits.forEachIn(group.pending, (i) => {
          delta[i]!.rows -= group.rows;
          delta[i]!.bytes -= group.bytes;
        });
      }
      s.deleteRange.run(from, to);
      s.deleteGapsIn.run(from, to);
      return { rows, bytes };
    }
    const range = { from, to, bit: this.bits.of(upstream) };
    const measured = s.measureRangeFor.get(range)!;
    s.deleteRangeFor.run(range);
    if (measured.freedRows < measured.rows) s.clearRangeFor.run(range);
    s.clearGapsFor.run(range);
    s.deleteClearedGaps.run(from, to);
    delta[upstream]!.rows -= measured.rows;
    delta[upstream]!.bytes -= measured.bytes;
    return { rows: measured.freedRows, bytes: measured.freedBytes };
  }
}
