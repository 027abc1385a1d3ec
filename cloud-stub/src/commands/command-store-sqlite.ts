/**
 * The backend's commands in SQLite: `commands.db` beside the sink. commands(...) keeps every command and its
 * state (nothing is deleted: this is a reference backend, whose job includes saying what happened);
 * device_locations(device_id, gateway_id, online, ...) is where each device was last reported.
 *
 * `created_order` numbers the commands in the order they were created: commands created within one millisecond
 * share `created`, and the ids are random, so without it pending() would list them in no particular order (a
 * "set-interval" then "reboot" sent the other way round). Added to a commands.db from before it (NULL there:
 * those come first among equals, as before).
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { Durability } from '@fleetgate/core';
import { openSqlite, type SqliteDatabase } from '@fleetgate/core/sqlite';
import {
  advanced,
  type CloudCommand,
  type CommandUpdate,
  type CloudCommandStore,
  type CommandState,
  type DeviceLocation,
  type NewCommand,
} from './command-store.ts';

interface Row {
  command_id: string;
  device_id: string;
  name: string;
  payload: Buffer;
  state: CommandState;
  result: Buffer;
  message: string;
  gateway_id: string | null;
  created: number;
  updated: number;
  expires: number;
}

const toCommand = (r: Row): CloudCommand => ({
  commandId: r.command_id,
  deviceId: r.device_id,
  name: r.name,
  payload: r.payload,
  state: r.state,
  result: r.result,
  message: r.message,
  gatewayId: r.gateway_id,
  createdAtMs: r.created,
  updatedAtMs: r.updated,
  expiresAtMs: r.expires,
});

export class SqliteCloudCommandStore implements CloudCommandStore {
  private readonly db: SqliteDatabase;
  private readonly statements;
  /** created_order of the last command created (this process is the file's only writer). */
  private lastOrder: number;

  constructor({ dir, durability }: { dir: string; durability: Durability }) {
    this.db = openSqlite(join(dir, 'commands.db'), { durability });
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS commands (
        command_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, name TEXT NOT NULL, payload BLOB NOT NULL,
        state TEXT NOT NULL, result BLOB NOT NULL, message TEXT NOT NULL, gateway_id TEXT,
        created INTEGER NOT NULL, updated INTEGER NOT NULL, expires INTEGER NOT NULL, created_order INTEGER
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS commands_pending ON commands (state, device_id, created);
      CREATE TABLE IF NOT EXISTS device_locations (
        device_id TEXT PRIMARY KEY, gateway_id TEXT NOT NULL, online INTEGER NOT NULL, protocol TEXT NOT NULL, updated INTEGER NOT NULL
      ) WITHOUT ROWID;
    `);
    const columns = this.db.prepare<[string], { name: string }>('SELECT name FROM pragma_table_info(?)').all('commands');
    if (!columns.some((c) => c.name === 'created_order')) this.db.exec('ALTER TABLE commands ADD COLUMN created_order INTEGER');
    this.lastOrder = this.db.prepare<[], { n: number }>('SELECT COALESCE(MAX(created_order), 0) AS n FROM commands').get()!.n;
    this.statements = {
      insert: this.db.prepare(
        `INSERT INTO commands (command_id, device_id, name, payload, state, result, message, gateway_id, created, updated, expires, created_order)
         VALUES (?, ?, ?, ?, 'pending', x'', '', NULL, ?, ?, ?, ?)`,
      ),
      get: this.db.prepare<[string], Row>('SELECT * FROM commands WHERE command_id = ?'),
      update: this.db.prepare(
        'UPDATE commands SET state = ?, result = ?, message = ?, gateway_id = ?, updated = ? WHERE command_id = ?',
      ),
      pendingFor: this.db.prepare<[string, number], Row>(
        "SELECT * FROM commands WHERE state = 'pending' AND device_id = ? AND expires > ? ORDER BY created, created_order",
      ),
      pendingAll: this.db.prepare<[number], Row>(
        "SELECT * FROM commands WHERE state = 'pending' AND expires > ? ORDER BY created, created_order",
      ),
      expired: this.db.prepare<[number], Row>("SELECT * FROM commands WHERE state = 'pending' AND expires <= ?"),
      locate: this.db.prepare('INSERT OR REPLACE INTO device_locations VALUES (?, ?, ?, ?, ?)'),
      location: this.db.prepare<[string], { gateway_id: string; online: number; protocol: string; updated: number }>(
        'SELECT gateway_id, online, protocol, updated FROM device_locations WHERE device_id = ?',
      ),
    };
  }

  async create({ deviceId, name, payload, expiresAtMs }: NewCommand): Promise<CloudCommand> {
    const commandId = randomUUID();
    const now = Date.now();
    this.statements.insert.run(commandId, deviceId, name, payload, now, now, expiresAtMs, this.lastOrder + 1);
    this.lastOrder++;
    return (await this.get(commandId))!;
  }

  async get(commandId: string): Promise<CloudCommand | undefined> {
    const row = this.statements.get.get(commandId);
    return row && toCommand(row);
  }

  async update(commandId: string, state: CommandState, fields: CommandUpdate): Promise<CloudCommand | undefined> {
    // Read and write with no await between: of two updates of one command at the same time (a gateway's report and
    // the sweeper's expiry), the second decides on what the first wrote, so a state never moves back.
    const row = this.statements.get.get(commandId);
    const current = row && toCommand(row);
    const next = current && advanced(current, state, fields);
    if (!next) return current;
    this.statements.update.run(state, next.result, next.message, next.gatewayId, next.updatedAtMs, commandId);
    return next;
  }

  async pending(deviceId?: string): Promise<CloudCommand[]> {
    const now = Date.now();
    return (deviceId === undefined ? this.statements.pendingAll.all(now) : this.statements.pendingFor.all(deviceId, now)).map(
      toCommand,
    );
  }

  async unconfirmedExpired(nowMs: number): Promise<CloudCommand[]> {
    return this.statements.expired.all(nowMs).map(toCommand);
  }

  async locate(deviceId: string, location: DeviceLocation): Promise<void> {
    this.statements.locate.run(deviceId, location.gatewayId, location.online ? 1 : 0, location.protocol, location.updatedAtMs);
  }

  async location(deviceId: string): Promise<DeviceLocation | undefined> {
    const row = this.statements.location.get(deviceId);
    return row && { gatewayId: row.gateway_id, online: row.online === 1, protocol: row.protocol, updatedAtMs: row.updated };
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
