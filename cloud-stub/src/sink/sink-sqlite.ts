/**
 * The SQLite sink.
 *
 * Layout: `sink.db` in the data folder, WAL mode (so `fleetgate cloud export` can read while the stub runs).
 *
 *   records(id INTEGER PRIMARY KEY, gateway_id, seq, device_id, stream, device_seq, device_time, gateway_time,
 *           received_time, content_type, payload, UNIQUE(gateway_id, seq))
 *                the id is the commit order; the unique key is the dedupe: ON CONFLICT DO NOTHING skips a resend
 *   gateways(gateway_id, last_seq, records, duplicates)   running totals, kept in the same transaction
 *   devices(device_id, records)                            records held per device
 *   gaps(gateway_id, from_seq, to_seq, reason, count, ...)  records a gateway reported it had to let go of
 *
 * Nothing is ever deleted: this is a reference backend whose job is to say exactly what arrived.
 */
import { dirname, join } from 'node:path';
import { type Clock, type Durability, systemClock } from '@fleetgate/core';
import { BulkInsert, openSqlite, type SqliteDatabase } from '@fleetgate/core/sqlite';
import type {
  ExportedGap,
  ExportedRecord,
  GatewayStats,
  Sink,
  SinkBatch,
  SinkGap,
  SinkOutcome,
  SinkRecord,
  SinkStats,
} from './sink.ts';

export const SINK_FILE = 'sink.db';

export interface SqliteSinkOptions {
  dir: string;
  durability: Durability;
  clock?: Clock;
}

export class SqliteSink implements Sink {
  readonly file: string;
  private readonly db: SqliteDatabase;
  private readonly clock: Clock;
  private readonly commitTx: (batches: readonly SinkBatch[], lastSeqs: Map<string, number>) => SinkOutcome[];
  private readonly insertGap;
  private readonly countHeld;
  /** Highest seq held per gateway: this process is the sink's only writer, so memory is the truth. */
  private lastSeqs = new Map<string, number>();
  /** What the rows being bound share: their gateway and commit time. */
  private readonly committing = { gatewayId: '', receivedTime: 0 };

  constructor({ dir, durability, clock = systemClock }: SqliteSinkOptions) {
    this.file = join(dir, SINK_FILE);
    this.clock = clock;
    this.db = openSqlite(this.file, { durability });
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS records (
        id            INTEGER PRIMARY KEY,
        gateway_id    TEXT    NOT NULL,
        seq           INTEGER NOT NULL,
        device_id     TEXT    NOT NULL,
        stream        TEXT    NOT NULL,
        device_seq    INTEGER NOT NULL,
        device_time   INTEGER NOT NULL,
        gateway_time  INTEGER NOT NULL,
        received_time INTEGER NOT NULL,
        content_type  TEXT    NOT NULL,
        payload       BLOB    NOT NULL,
        UNIQUE (gateway_id, seq)
      );
      CREATE TABLE IF NOT EXISTS gateways (
        gateway_id TEXT PRIMARY KEY,
        last_seq   INTEGER NOT NULL,
        records    INTEGER NOT NULL,
        duplicates INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS devices (
        device_id TEXT PRIMARY KEY,
        records   INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS gaps (
        id INTEGER PRIMARY KEY, gateway_id TEXT NOT NULL, from_seq INTEGER NOT NULL, to_seq INTEGER NOT NULL,
        reason TEXT NOT NULL, count INTEGER NOT NULL, time INTEGER NOT NULL, received_time INTEGER NOT NULL,
        UNIQUE (gateway_id, from_seq)
      );
    `);
    const columns =
      'INTO records (gateway_id, seq, device_id, stream, device_seq, device_time, gateway_time, received_time, content_type, payload)';
    // One path for fresh records and resends (lanes send seqs out of order): the unique key decides, and RETURNING
    // says which rows went in. Not INSERT OR IGNORE: that would also skip a row breaking NOT NULL, silently.
    const insert = new BulkInsert<SinkRecord>(
      this.db,
      `INSERT ${columns}`,
      10,
      (r, p, o) => bindRecord(r, p, o, this.committing),
      16,
      'ON CONFLICT (gateway_id, seq) DO NOTHING RETURNING device_id AS d',
    );
    const addGateway = this.db.prepare(
      `INSERT INTO gateways (gateway_id, last_seq, records, duplicates) VALUES (?, ?, ?, ?)
       ON CONFLICT (gateway_id) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq),
         records = records + excluded.records, duplicates = duplicates + excluded.duplicates`,
    );
    const addDevice = this.db.prepare(
      `INSERT INTO devices (device_id, records) VALUES (?, ?)
       ON CONFLICT (device_id) DO UPDATE SET records = records + excluded.records`,
    );
    this.countHeld = this.db.prepare<[string, number, number], { n: number }>(
      'SELECT count(*) AS n FROM records WHERE gateway_id = ? AND seq BETWEEN ? AND ?',
    );
    this.insertGap = this.db.prepare(
      'INSERT OR IGNORE INTO gaps (gateway_id, from_seq, to_seq, reason, count, time, received_time) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    for (const row of this.db
      .prepare<[], { gateway_id: string; last_seq: number }>('SELECT gateway_id, last_seq FROM gateways')
      .iterate()) {
      this.lastSeqs.set(row.gateway_id, row.last_seq);
    }

    this.commitTx = this.db.transaction((batches: readonly SinkBatch[], lastSeqs: Map<string, number>) => {
      const perDevice = new Map<string, number>();
      const outcomes = batches.map(({ gatewayId, records }) => {
        if (records.length === 0) return { inserted: 0, duplicates: 0 };
        this.committing.gatewayId = gatewayId;
        const inserted = insert.all<{ d: string }>(records);
        for (const { d } of inserted) perDevice.set(d, (perDevice.get(d) ?? 0) + 1);
        let lastSeq = lastSeqs.get(gatewayId) ?? 0;
        for (const r of records) if (r.seq > lastSeq) lastSeq = r.seq;
        lastSeqs.set(gatewayId, lastSeq);
        const duplicates = records.length - inserted.length;
        addGateway.run(gatewayId, lastSeq, inserted.length, duplicates);
        return { inserted: inserted.length, duplicates };
      });
      for (const [deviceId, n] of perDevice) addDevice.run(deviceId, n);
      return outcomes;
    });
  }

  async commit(batches: readonly SinkBatch[]): Promise<SinkOutcome[]> {
    // Work on a copy of the highest seqs: a transaction that fails must leave them as they were.
    const lastSeqs = new Map(this.lastSeqs);
    this.committing.receivedTime = this.clock.now();
    const outcomes = this.commitTx(batches, lastSeqs);
    this.lastSeqs = lastSeqs;
    return outcomes;
  }

  async recordGap(gatewayId: string, gap: SinkGap): Promise<void> {
    // A gateway that cannot tell exactly what it lost (a damaged journal) reports a wider range: what is held
    // here from that range was not lost.
    const held = this.countHeld.get(gatewayId, gap.fromSeq, gap.toSeq)!.n;
    const lost = Math.min(gap.count, gap.toSeq - gap.fromSeq + 1 - held);
    this.insertGap.run(gatewayId, gap.fromSeq, gap.toSeq, gap.reason, lost, gap.timeMs, this.clock.now());
  }

  async lastSeq(gatewayId: string): Promise<number> {
    return this.lastSeqs.get(gatewayId) ?? 0;
  }

  async stats(): Promise<SinkStats> {
    return readStats(this.db);
  }

  /** Read through a connection of its own, so that commits can go on while the export is read. */
  exportRecords(): AsyncIterable<ExportedRecord> {
    return toAsync(exportSqliteSink(dirname(this.file)));
  }

  async exportGaps(): Promise<ExportedGap[]> {
    return readGaps(this.db);
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}

/**
 * Every record of the sink in `dir`, in commit order, read through a read-only connection of its own: works
 * while a cloud-stub is writing to it.
 */
export function* exportSqliteSink(dir: string): Generator<ExportedRecord> {
  const db = openSqlite(join(dir, SINK_FILE), { durability: 'process', readonly: true });
  try {
    yield* readRecords(db);
  } finally {
    db.close();
  }
}

/** The stats of the sink in `dir`, read through a read-only connection of its own. */
export function readSqliteSinkStats(dir: string): SinkStats {
  const db = openSqlite(join(dir, SINK_FILE), { durability: 'process', readonly: true });
  try {
    return readStats(db);
  } finally {
    db.close();
  }
}

function bindRecord(r: SinkRecord, p: unknown[], o: number, shared: { gatewayId: string; receivedTime: number }): void {
  p[o] = shared.gatewayId;
  p[o + 1] = r.seq;
  p[o + 2] = r.deviceId;
  p[o + 3] = r.stream;
  p[o + 4] = r.deviceSeq;
  p[o + 5] = r.deviceTimeMs;
  p[o + 6] = r.gatewayTimeMs;
  p[o + 7] = shared.receivedTime;
  p[o + 8] = r.contentType;
  p[o + 9] = r.payload;
}

function readStats(db: SqliteDatabase): SinkStats {
  const gateways: Record<string, GatewayStats> = {};
  let records = 0;
  let duplicates = 0;
  const rows = db.prepare<[], { gateway_id: string } & GatewayStats>(
    'SELECT gateway_id, last_seq AS lastSeq, records, duplicates FROM gateways ORDER BY gateway_id',
  );
  for (const { gateway_id, ...stats } of rows.iterate()) {
    gateways[gateway_id] = stats;
    records += stats.records;
    duplicates += stats.duplicates;
  }
  const devices: Record<string, number> = {};
  for (const row of db
    .prepare<[], { device_id: string; records: number }>('SELECT device_id, records FROM devices ORDER BY device_id')
    .iterate()) {
    devices[row.device_id] = row.records;
  }
  const gaps = db
    .prepare<[], { n: number; lost: number }>('SELECT count(*) AS n, coalesce(sum(count), 0) AS lost FROM gaps')
    .get()!;
  return { records, duplicates, gateways, devices, gaps: gaps.n, recordsLostInGaps: gaps.lost };
}

/** Every gap reported to the sink in `dir`, in the order received. */
export function readSqliteGaps(dir: string): ExportedGap[] {
  const db = openSqlite(join(dir, SINK_FILE), { durability: 'process', readonly: true });
  try {
    return readGaps(db);
  } finally {
    db.close();
  }
}

function readGaps(db: SqliteDatabase): ExportedGap[] {
  return db
    .prepare<[], ExportedGap>(
      `SELECT gateway_id AS gatewayId, from_seq AS fromSeq, to_seq AS toSeq, reason, count, time, received_time AS receivedTime FROM gaps ORDER BY id`,
    )
    .all();
}

function* readRecords(db: SqliteDatabase): Generator<ExportedRecord> {
  const rows = db.prepare<[], Omit<ExportedRecord, 'payload'> & { payload: Buffer }>(
    `SELECT gateway_id AS gatewayId, seq, device_id AS deviceId, stream, payload, content_type AS contentType,
            device_seq AS deviceSeq, device_time AS deviceTime, gateway_time AS gatewayTime, received_time AS receivedTime
     FROM records ORDER BY id`,
  );
  for (const row of rows.iterate()) yield { ...row, payload: row.payload.toString('base64') };
}

async function* toAsync<T>(items: Iterable<T>): AsyncGenerator<T> {
  yield* items;
}
