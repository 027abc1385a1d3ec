/**
 * Dead letters: records the backend rejected as invalid, again and again (the uplink's maxAttempts). Moved out
 * of the journal so that they do not block the stream, and kept, with the backend's reason, in the journal's
 * database (table dead_letters) until someone replays or drops them: `fleetgate deadletter list|show|replay|
 * drop --data DIR`. A replay only marks the letter; the gateway re-appends marked letters as new records (new
 * seqs, so the backend does not take them for resends) when it starts and every few seconds while it runs, so
 * that only the gateway ever gives out seqs.
 *
 * With several upstreams a letter remembers which of them refused it (`upstreams`): a record refused by one
 * upstream may have been taken by the others, so its replay goes only to those that refused it. A letter written
 * before upstreams had names, or by a gateway with one upstream, has none and is routed as any new record.
 */
import type { SqliteDatabase } from '@fleetgate/core/sqlite';
import type { JournalRecord, NewRecord } from './journal.ts';

export interface DeadLetter {
  seq: number;
  deviceId: string;
  stream: string;
  contentType: string;
  deviceSeq: number;
  deviceTimeMs: number;
  gatewayTimeMs: number;
  payload: Buffer;
  reason: string;
  deadAtMs: number;
  /** Asked to be sent again (by `fleetgate deadletter replay`). */
  replay: boolean;
  /** The upstreams that refused it; empty: the one upstream, or not known. */
  upstreams: string[];
}

/** A letter to re-append: a new record, for the upstreams that refused it (none named: routed as usual). */
export interface Replay extends NewRecord {
  upstreams: string[];
}

type Row = Omit<DeadLetter, 'replay' | 'upstreams'> & { replay: number; upstreams: string };

const toLetter = (r: Row): DeadLetter => ({
  ...r,
  replay: r.replay === 1,
  upstreams: r.upstreams === '' ? [] : r.upstreams.split(','),
});

export class DeadLetters {
  private readonly statements;
  private writes: ReturnType<typeof prepareWrites> | undefined;

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
      markReplay: db.prepare('UPDATE dead_letters SET replay = 1 WHERE seq = ?'),
      drop: db.prepare('DELETE FROM dead_letters WHERE seq = ?'),
      toReplay: db.prepare<[], Row>(`SELECT ${columns} FROM dead_letters WHERE replay = 1 ORDER BY seq`),
    };
  }

  /** `upstream`: the one that refused it, when there are several. */
  add(record: JournalRecord, reason: string, nowMs: number, upstream = ''): void {
    this.write().add.run(
      record.seq,
      record.deviceId,
      record.stream,
      record.contentType,
      record.deviceSeq,
      record.deviceTimeMs,
      record.gatewayTimeMs,
      record.payload,
      reason,
      nowMs,
      upstream,
    );
  }

  /** Puts back a letter as it was (salvage of a damaged journal). */
  restore(l: DeadLetter): void {
    this.write().restore.run(
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

  /** Statements that write, prepared when first needed: a journal opened read-only (for salvage) has none. */
  private write(): ReturnType<typeof prepareWrites> {
    this.writes ??= prepareWrites(this.db);
    return this.writes;
  }

  list(): DeadLetter[] {
    return this.statements.list.all().map(toLetter);
  }

  get(seq: number): DeadLetter | undefined {
    const row = this.statements.get.get(seq);
    return row && toLetter(row);
  }

  /** Marks a letter to be sent again; false if there is none with this seq. */
  markReplay(seq: number): boolean {
    return this.statements.markReplay.run(seq).changes > 0;
  }

  drop(seq: number): boolean {
    return this.statements.drop.run(seq).changes > 0;
  }

  /** The letters marked for replay, as new records, and a function that forgets them once they are journaled. */
  takeReplays(nowMs: number): { records: Replay[]; done: () => void } {
    const letters = this.statements.toReplay.all().map(toLetter);
    return {
      records: letters.map((l) => ({
        deviceId: l.deviceId,
        stream: l.stream,
        contentType: l.contentType,
        payload: l.payload,
        deviceSeq: 0,
        deviceEpoch: '',
        deviceTimeMs: l.deviceTimeMs,
        gatewayTimeMs: nowMs,
        upstreams: l.upstreams,
      })),
      done: () => {
        for (const l of letters) this.statements.drop.run(l.seq);
      },
    };
  }
}

/** Letters written before the upstreams column (a journal opened read-only, for salvage, is not brought up to date). */
function hasUpstreams(db: SqliteDatabase): boolean {
  return db
    .prepare<[], { name: string }>('PRAGMA table_info(dead_letters)')
    .all()
    .some((c) => c.name === 'upstreams');
}

function prepareWrites(db: SqliteDatabase) {
  return {
    restore: db.prepare('INSERT OR REPLACE INTO dead_letters VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)'),
    // Refused again by another upstream: that upstream joins the list, its reason is the latest.
    add: db.prepare(
      `INSERT INTO dead_letters VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?) ON CONFLICT (seq) DO UPDATE SET reason = excluded.reason,
       dead_at = excluded.dead_at, upstreams = CASE
         WHEN upstreams = '' THEN excluded.upstreams
         WHEN excluded.upstreams = '' OR instr(',' || upstreams || ',', ',' || excluded.upstreams || ',') > 0 THEN upstreams
         ELSE upstreams || ',' || excluded.upstreams END`,
    ),
  };
}
