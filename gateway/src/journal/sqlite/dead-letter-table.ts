/**
 * The dead letters in the journal's database: table dead_letters, one row per seq, with the backend's reason
 * and the upstreams that refused it (comma-separated; '' for none named). dead-letters.ts says what they are.
 * Opened on a read-only database (salvage of a damaged journal, which is not brought up to date) it only reads,
 * and reads a table from before the upstreams column as having none.
 */
import type { SqliteDatabase } from '@fleetgate/core/sqlite';
import type { DeadLetter, DeadLetterTable } from '../journal.ts';

type Row = Omit<DeadLetter, 'replay' | 'upstreams'> & { replay: number; upstreams: string };

const toLetter = (r: Row): DeadLetter => ({
  ...r,
  replay: r.replay === 1,
  upstreams: r.upstreams === '' ? [] : r.upstreams.split(','),
});

export class SqliteDeadLetterTable implements DeadLetterTable {
  private readonly statements;
  private putStatement: { run(...params: unknown[]): unknown } | undefined;

  constructor(private readonly db: SqliteDatabase) {
    if (!db.readonly) {
      db.exec(`
      CREATE TABLE IF NOT EXISTS dead_letters (
        seq INTEGER PRIMARY KEY, device_id TEXT NOT NULL, stream TEXT NOT NULL, content_type TEXT NOT NULL,
        device_seq INTEGER NOT NULL, device_time INTEGER NOT NULL, gateway_time INTEGER NOT NULL, payload BLOB NOT NULL,
        reason TEXT NOT NULL, dead_at INTEGER NOT NULL, replay INTEGER NOT NULL DEFAULT 0, upstreams TEXT NOT NULL DEFAULT ''
      );
    `);
      if (!hasUpstreams(db)) db.exec("ALTER TABLE dead_letters ADD COLUMN upstreams TEXT NOT NULL DEFAULT ''");
    }
    const columns = `seq, device_id AS deviceId, stream, content_type AS contentType, device_seq AS deviceSeq, device_time AS deviceTimeMs,
      gateway_time AS gatewayTimeMs, payload, reason, dead_at AS deadAtMs, replay, ${hasUpstreams(db) ? 'upstreams' : "'' AS upstreams"}`;
    this.statements = {
      list: db.prepare<[], Row>(`SELECT ${columns} FROM dead_letters ORDER BY seq`),
      get: db.prepare<[number], Row>(`SELECT ${columns} FROM dead_letters WHERE seq = ?`),
      mark: db.prepare('UPDATE dead_letters SET replay = 1 WHERE seq = ?'),
      delete: db.prepare('DELETE FROM dead_letters WHERE seq = ?'),
      marked: db.prepare<[], Row>(`SELECT ${columns} FROM dead_letters WHERE replay = 1 ORDER BY seq`),
    };
  }

  put(l: DeadLetter): void {
    // Prepared when first needed: a journal opened read-only (for salvage) writes none.
    this.putStatement ??= this.db.prepare('INSERT OR REPLACE INTO dead_letters VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)');
    this.putStatement.run(
      l.seq,
      l.deviceId,
      l.stream,
      l.contentType,
      l.deviceSeq,
      l.deviceTimeMs,
      l.gatewayTimeMs,
      l.payload,
      l.reason,
      l.deadAtMs,
      l.replay ? 1 : 0,
      l.upstreams.join(','),
    );
  }

  get(seq: number): DeadLetter | undefined {
    const row = this.statements.get.get(seq);
    return row && toLetter(row);
  }

  list(): DeadLetter[] {
    return this.statements.list.all().map(toLetter);
  }

  marked(): DeadLetter[] {
    return this.statements.marked.all().map(toLetter);
  }

  mark(seq: number): boolean {
    return this.statements.mark.run(seq).changes > 0;
  }

  delete(seq: number): boolean {
    return this.statements.delete.run(seq).changes > 0;
  }
}

/** Letters written before the upstreams column (a journal opened read-only, for salvage, is not brought up to date). */
function hasUpstreams(db: SqliteDatabase): boolean {
  return db
    .prepare<[], { name: string }>('PRAGMA table_info(dead_letters)')
    .all()
    .some((c) => c.name === 'upstreams');
}
