/**
 * The SQLite sink.
 *
 * Layout: `sink.db` in the data folder, WAL mode (so `fleetgate cloud export` can read while the stub runs).
 *
 *   records(id INTEGER PRIMARY KEY, gateway_id, seq, device_id, stream, device_seq, device_time, gateway_time,
 *           received_time, content_type, payload, UNIQUE(gateway_id, seq))
 *                the id is the commit order; the unique key is the dedupe: INSERT OR IGNORE skips a resend
 *   gateways(gateway_id, last_seq, records, duplicates)   running totals, kept in the same transaction
 *   devices(device_id, records)                            records held per device
 *
 * Nothing is ever deleted: this is a reference backend whose job is to say exactly what arrived.
 */
import { join } from 'node:path';
import { openSqlite, systemClock, type Clock, type Durability, type SqliteDatabase } from '@fleetgate/common';
import type { ExportedRecord, GatewayStats, Sink, SinkBatch, SinkOutcome, SinkStats } from './sink.ts';

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
  private readonly commitTx: (batches: readonly SinkBatch[]) => SinkOutcome[];
  private readonly selectLastSeq;

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
    `);
    const insert = this.db.prepare(
      `INSERT OR IGNORE INTO records (gateway_id, seq, device_id, stream, device_seq, device_time, gateway_time,
                                      received_time, content_type, payload)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
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
    this.selectLastSeq = this.db.prepare<[string], { last_seq: number }>('SELECT last_seq FROM gateways WHERE gateway_id = ?');

    this.commitTx = this.db.transaction((batches: readonly SinkBatch[]) => {
      const receivedTime = this.clock.now();
      const perDevice = new Map<string, number>();
      const outcomes = batches.map(({ gatewayId, records }) => {
        let inserted = 0;
        let lastSeq = 0;
        for (const r of records) {
          const { changes } = insert.run(
            gatewayId, r.seq, r.deviceId, r.stream, r.deviceSeq, r.deviceTimeMs, r.gatewayTimeMs, receivedTime, r.contentType, r.payload,
          );
          if (changes > 0) {
            inserted++;
            perDevice.set(r.deviceId, (perDevice.get(r.deviceId) ?? 0) + 1);
          }
          if (r.seq > lastSeq) lastSeq = r.seq;
        }
        const duplicates = records.length - inserted;
        if (records.length > 0) addGateway.run(gatewayId, lastSeq, inserted, duplicates);
        return { inserted, duplicates };
      });
      for (const [deviceId, count] of perDevice) addDevice.run(deviceId, count);
      return outcomes;
    });
  }

  async commit(batches: readonly SinkBatch[]): Promise<SinkOutcome[]> {
    return this.commitTx(batches);
  }

  async lastSeq(gatewayId: string): Promise<number> {
    return this.selectLastSeq.get(gatewayId)?.last_seq ?? 0;
  }

  async stats(): Promise<SinkStats> {
    return readStats(this.db);
  }

  exportRecords(): AsyncIterable<ExportedRecord> {
    return toAsync(readRecords(this.db));
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
  for (const row of db.prepare<[], { device_id: string; records: number }>('SELECT device_id, records FROM devices ORDER BY device_id').iterate()) {
    devices[row.device_id] = row.records;
  }
  return { records, duplicates, gateways, devices };
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
