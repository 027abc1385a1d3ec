/**
 * Renumbering, for a journal the backend does not know: meta.welcomed says whether a backend has ever seen this
 * journal (until then its seqs may clash with those of a lost older journal), and moveAbove moves every unacked
 * row and gap above the seqs the backend already holds, keeping their order.
 */
import type { SqliteDatabase } from '@fleetgate/core/sqlite';

export class Renumbering {
  private wasWelcomed: boolean;
  private readonly setMeta;
  private readonly move: (from: number, delta: number, lastSeq: number) => void;

  constructor(db: SqliteDatabase, meta: ReadonlyMap<string, number>) {
    this.wasWelcomed = meta.get('welcomed') === 1;
    this.setMeta = db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)');
    const statements = {
      // Through negative seqs: a primary key moved in place would collide with itself.
      negateRows: db.prepare('UPDATE journal SET seq = -seq WHERE seq > ?'),
      shiftRows: db.prepare('UPDATE journal SET seq = -seq + ? WHERE seq < 0'),
      negateGaps: db.prepare('UPDATE gaps SET from_seq = -from_seq, to_seq = -to_seq WHERE from_seq > ?'),
      shiftGaps: db.prepare('UPDATE gaps SET from_seq = -from_seq + ?, to_seq = -to_seq + ? WHERE from_seq < 0'),
    };
    this.move = db.transaction((from: number, delta: number, lastSeq: number) => {
      statements.negateRows.run(from);
      statements.shiftRows.run(delta);
      statements.negateGaps.run(from);
      statements.shiftGaps.run(delta, delta);
      this.setMeta.run('last_seq', lastSeq + delta);
      this.setMeta.run('acked_through', from + delta);
    });
  }

  get welcomed(): boolean {
    return this.wasWelcomed;
  }

  markWelcomed(): void {
    if (this.wasWelcomed) return;
    this.setMeta.run('welcomed', 1);
    this.wasWelcomed = true;
  }

  /**
   * Moves every row and gap above `ackedThrough` up by `to - ackedThrough`, so that the first of them lands
   * above `to`; one transaction. Returns how far (0, and nothing done, when `to` is at or below ackedThrough).
   */
  moveAbove(to: number, ackedThrough: number, lastSeq: number): number {
    if (to <= ackedThrough) return 0;
    const delta = to - ackedThrough;
    this.move(ackedThrough, delta, lastSeq);
    return delta;
  }
}
