/**
 * Reading the journal back: rows in seq order (all of them, or with several upstreams only those routed to one
 * upstream that it has not acknowledged: its bit still set in `pending`), and the gaps each upstream has still
 * to hear of.
 */
import type { SqliteDatabase } from '@fleetgate/core/sqlite';
import type { Gap, JournalRecord } from '../journal.ts';
import { RECORD_COLUMNS, SELECT_GAPS } from './schema.ts';
import type { UpstreamBits } from './upstream-bits.ts';

export class Reads {
  private readonly statements;

  constructor(
    db: SqliteDatabase,
    private readonly bits: UpstreamBits,
  ) {
    this.statements = {
      selectAfter: db.prepare<[number, number, number], JournalRecord>(
        `SELECT ${RECORD_COLUMNS} FROM journal WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?`,
      ),
      selectAfterFor: db.prepare<[number, number, number, number], JournalRecord>(
        `SELECT ${RECORD_COLUMNS} FROM journal WHERE seq > ? AND seq <= ? AND (pending & ?) != 0 ORDER BY seq LIMIT ?`,
      ),
      selectGaps: db.prepare<[], Gap>(SELECT_GAPS),
      selectGapsFor: db.prepare<[number], Gap>(`${SELECT_GAPS.replace(' ORDER BY', ' WHERE (pending & ?) != 0 ORDER BY')}`),
    };
  }

  /** See Journal.readAfter. */
  readAfter(afterSeq: number, maxRecords: number, maxBytes: number, throughSeq: number, upstream?: number): JournalRecord[] {
    if (maxRecords <= 0) return [];
    const out: JournalRecord[] = [];
    let bytes = 0;
    const rows =
      upstream !== undefined && this.bits.count > 1
        ? this.statements.selectAfterFor.iterate(afterSeq, throughSeq, this.bits.of(upstream), maxRecords)
        : this.statements.selectAfter.iterate(afterSeq, throughSeq, maxRecords);
    for (const row of rows) {
      if (out.length > 0 && bytes + row.payload.length > maxBytes) break;
      out.push(row);
      bytes += row.payload.length;
    }
    return out;
  }

  /** Gaps not yet acknowledged (by `upstream`, if given: the gaps it still has to hear of). */
  gaps(upstream?: number): Gap[] {
    return upstream !== undefined && this.bits.count > 1
      ? this.statements.selectGapsFor.all(this.bits.of(upstream))
      : this.statements.selectGaps.all();
  }
}
