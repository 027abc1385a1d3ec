/**
 * The durable outbox: a SQLite file on the device.
 *
 *   outbox(seq INTEGER PRIMARY KEY, stream, content_type, time_ms, payload)   messages taken, not yet acked
 *   meta(key, value)   'epoch' (made when the file is new) and 'last_seq' (the highest seq ever given)
 *
 * add() only queues; flush() writes everything queued in one transaction (group commit: one fsync for many
 * messages, which keeps durability=power affordable on an SD card), and only flushed messages are sent. Acked
 * rows are deleted. The epoch and last_seq survive restarts, so a rebooted device resumes its numbering and
 * the gateway recognises what it resends.
 */
import { randomUUID } from 'node:crypto';
import type { Durability } from '@fleetgate/core';
import { openSqlite, type SqliteDatabase } from '@fleetgate/core/sqlite';
import {
  assertRoom,
  DEFAULT_OUTBOX_LIMITS,
  type Outbox,
  type OutboxEntry,
  type OutboxLimits,
  type OutboxMessage,
} from './outbox.ts';

export interface SqliteOutboxOptions extends Partial<OutboxLimits> {
  path: string;
  /** power (default): a flushed message survives power loss; process: survives a crash of the process. */
  durability?: Durability;
}

export class SqliteOutbox implements Outbox {
  readonly epoch: string;
  private readonly db: SqliteDatabase;
  private readonly limits: OutboxLimits;
  private last: number;
  private count: number;
  private heldBytes: number;
  private queued: OutboxEntry[] = [];
  private readonly writeQueued;
  private readonly selectAfter;
  private readonly deleteThrough;

  constructor(options: SqliteOutboxOptions) {
    this.limits = { ...DEFAULT_OUTBOX_LIMITS, maxMessages: 1_000_000, maxBytes: 256 << 20, ...options };
    this.db = openSqlite(options.path, { durability: options.durability ?? 'power' });
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS outbox (
        seq INTEGER PRIMARY KEY, stream TEXT NOT NULL, content_type TEXT NOT NULL, time_ms INTEGER NOT NULL, payload BLOB NOT NULL
      );
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    `);
    const meta = new Map(
      this.db
        .prepare<[], { key: string; value: string }>('SELECT key, value FROM meta')
        .all()
        .map((r) => [r.key, r.value]),
    );
    this.epoch = meta.get('epoch') ?? randomUUID();
    if (!meta.has('epoch')) this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)').run('epoch', this.epoch);
    const held = this.db
      .prepare<[], { n: number; bytes: number; maxSeq: number | null }>(
        'SELECT count(*) AS n, coalesce(sum(length(payload)), 0) AS bytes, max(seq) AS maxSeq FROM outbox',
      )
      .get()!;
    this.last = Math.max(Number(meta.get('last_seq') ?? 0), held.maxSeq ?? 0);
    this.count = held.n;
    this.heldBytes = held.bytes;
    const insert = this.db.prepare('INSERT INTO outbox (seq, stream, content_type, time_ms, payload) VALUES (?, ?, ?, ?, ?)');
    const setLast = this.db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_seq', ?)");
    this.writeQueued = this.db.transaction((entries: OutboxEntry[]) => {
      for (const e of entries) insert.run(e.seq, e.stream, e.contentType, e.timeMs, e.payload);
      setLast.run(String(entries[entries.length - 1]!.seq));
    });
    this.selectAfter = this.db.prepare<[number, number], OutboxEntry>(
      'SELECT seq, stream, content_type AS contentType, time_ms AS timeMs, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?',
    );
    this.deleteThrough = this.db.prepare<[number], { n: number; bytes: number }>(
      'DELETE FROM outbox WHERE seq <= ? RETURNING 1 AS n, length(payload) AS bytes',
    );
  }

  get lastSeq(): number {
    return this.last;
  }

  get size(): number {
    return this.count + this.queued.length;
  }

  get bytes(): number {
    return this.heldBytes;
  }

  add(message: OutboxMessage): OutboxEntry {
    assertRoom(this.size, this.heldBytes, message.payload.length, this.limits);
    const entry = { ...message, seq: ++this.last };
    this.queued.push(entry);
    this.heldBytes += message.payload.length;
    return entry;
  }

  flush(): void {
    if (this.queued.length === 0) return;
    const entries = this.queued;
    this.writeQueued(entries);
    this.queued = [];
    this.count += entries.length;
  }

  after(afterSeq: number, max: number): OutboxEntry[] {
    return this.selectAfter.all(afterSeq, max);
  }

  ackThrough(seq: number): void {
    for (const row of this.deleteThrough.iterate(seq)) {
      this.count -= row.n;
      this.heldBytes -= row.bytes;
    }
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
