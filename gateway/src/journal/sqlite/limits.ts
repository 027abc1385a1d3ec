/**
 * The limits, inside the commit's transaction: the oldest rows older than maxAgeMs, and (drop-oldest) beyond
 * maxBytes, are deleted and a gap records them, never silently. reject-new drops nothing: group commit refuses
 * what does not fit the journal's room before it reaches a commit.
 */
import type { Clock } from '@fleetgate/core';
import type { SqliteDatabase } from '@fleetgate/core/sqlite';
import type { Gap, GapReason, JournalLimits } from '../journal.ts';
import type { BacklogDelta } from './backlog.ts';
import type { UpstreamBits } from './upstream-bits.ts';

/** After dropping for maxBytes, the journal holds at most this share of it: drops come in chunks, not per commit. */
const DROP_TO = 0.95;

/** A gap a commit recorded, with the payload bytes it let go of. */
export type DroppedGap = Gap & { bytes: number };

type OldRow = { seq: number; bytes: number; t: number; pending: number };

export class Limits {
  private readonly statements;

  constructor(
    db: SqliteDatabase,
    private readonly bits: UpstreamBits,
    private readonly limits: JournalLimits,
    private readonly clock: Clock,
  ) {
    this.statements = {
      oldest: db.prepare<[], OldRow>(
        'SELECT seq, length(payload) AS bytes, gateway_time AS t, pending FROM journal ORDER BY seq',
      ),
      deleteRange: db.prepare('DELETE FROM journal WHERE seq BETWEEN ? AND ?'),
      insertGap: db.prepare(
        'INSERT OR REPLACE INTO gaps (from_seq, to_seq, reason, count, time, pending) VALUES (?, ?, ?, ?, ?, ?)',
      ),
    };
  }

  /** Drops (with gaps) the rows beyond the limits, the journal holding `payloadBytes` before it. */
  enforce(payloadBytes: number, delta: BacklogDelta | undefined): DroppedGap[] {
    const gaps: DroppedGap[] = [];
    const now = this.clock.now();
    const { maxAgeMs, maxBytes, policy } = this.limits;
    if (maxAgeMs > 0) {
      const gap = this.dropPrefix('too-old', (row) => row.t < now - maxAgeMs, delta);
      if (gap) {
        gaps.push(gap);
        payloadBytes -= gap.bytes;
      }
    }
    if (maxBytes > 0 && policy === 'drop-oldest' && payloadBytes > maxBytes) {
      let excess = payloadBytes - maxBytes * DROP_TO;
      const gap = this.dropPrefix(
        'journal-full',
        (row) => {
          if (excess <= 0) return false;
          excess -= row.bytes;
          return true;
        },
        delta,
      );
      if (gap) gaps.push(gap);
    }
    return gaps;
  }

  /**
   * Deletes the oldest rows while `take(row)` says so; records and returns the gap, which goes to the upstreams
   * that were still waiting for any of those rows.
   */
  private dropPrefix(reason: GapReason, take: (row: OldRow) => boolean, delta: BacklogDelta | undefined): DroppedGap | undefined {
    let from = 0;
    let to = 0;
    let count = 0;
    let bytes = 0;
    let pending = 0;
    for (const row of this.statements.oldest.iterate()) {
      if (!take(row)) break;
      if (count === 0) from = row.seq;
      to = row.seq;
      count++;
      bytes += row.bytes;
      pending |= row.pending;
      if (delta)
        this.bits.forEachIn(row.pending, (i) => {
          delta[i]!.rows--;
          delta[i]!.bytes -= row.bytes;
        });
    }
    if (count === 0) return undefined;
    this.statements.deleteRange.run(from, to);
    const gap = { from, to, reason, count, timeMs: this.clock.now(), bytes };
    this.statements.insertGap.run(from, to, reason, count, gap.timeMs, pending & this.bits.all);
    return gap;
  }
}
