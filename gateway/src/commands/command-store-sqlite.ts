/**
 * Commands in SQLite: `commands.db` beside the journal (its own file: commands are handled on the MQTT thread,
 * the journal belongs to the journal thread). One row per command, deleted once the backend confirmed its final
 * status. Writes are few (a handful per command), so every change is its own durable transaction.
 */
import { join } from 'node:path';
import type { Durability } from '@fleetgate/core';
import { openSqlite, type SqliteDatabase } from '@fleetgate/core/sqlite';
import { CommandStatus, type Command } from '@fleetgate/protos';
import { FINAL_STATUSES, isAdvance, type CommandStore, type StoredCommand } from './command-store.ts';

interface Row {
  command_id: string;
  device_id: string;
  name: string;
  payload: Buffer;
  expires_at: number;
  status: number;
  result_payload: Buffer;
  message: string;
  reported_status: number;
  origin: string;
}

const toCommand = (r: Row): StoredCommand => ({
  commandId: r.command_id,
  deviceId: r.device_id,
  name: r.name,
  payload: r.payload,
  expiresAtMs: r.expires_at,
  status: r.status,
  resultPayload: r.result_payload,
  message: r.message,
  reportedStatus: r.reported_status,
  origin: r.origin,
});

const FINAL = [...FINAL_STATUSES].join(',');

export class SqliteCommandStore implements CommandStore {
  private readonly db: SqliteDatabase;
  private readonly statements;

  constructor({ dir, durability }: { dir: string; durability: Durability }) {
    this.db = openSqlite(join(dir, 'commands.db'), { durability });
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS commands (
        command_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, name TEXT NOT NULL, payload BLOB NOT NULL,
        expires_at INTEGER NOT NULL, status INTEGER NOT NULL, result_payload BLOB NOT NULL, message TEXT NOT NULL,
        reported_status INTEGER NOT NULL, created INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS commands_by_device ON commands (device_id, created);
    `);
    // The upstream a command came from (added with several upstreams; older rows: "", any).
    if (
      !this.db
        .prepare<[], { name: string }>('PRAGMA table_info(commands)')
        .all()
        .some((c) => c.name === 'origin')
    ) {
      this.db.exec("ALTER TABLE commands ADD COLUMN origin TEXT NOT NULL DEFAULT ''");
    }
    this.statements = {
      insert: this.db.prepare(
        `INSERT OR IGNORE INTO commands VALUES (?, ?, ?, ?, ?, ${CommandStatus.COMMAND_STATUS_QUEUED}, x'', '', ${CommandStatus.COMMAND_STATUS_UNSPECIFIED}, ?, ?)`,
      ),
      get: this.db.prepare<[string], Row>('SELECT * FROM commands WHERE command_id = ?'),
      update: this.db.prepare('UPDATE commands SET status = ?, result_payload = ?, message = ? WHERE command_id = ?'),
      pendingFor: this.db.prepare<[string], Row>(
        `SELECT * FROM commands WHERE device_id = ? AND status NOT IN (${FINAL}) ORDER BY created`,
      ),
      unreported: this.db.prepare<[], Row>('SELECT * FROM commands WHERE status != reported_status ORDER BY created'),
      confirm: this.db.prepare('UPDATE commands SET reported_status = ? WHERE command_id = ?'),
      forget: this.db.prepare(`DELETE FROM commands WHERE command_id = ? AND status IN (${FINAL}) AND status = reported_status`),
      expired: this.db.prepare<[number], Row>(`SELECT * FROM commands WHERE status NOT IN (${FINAL}) AND expires_at <= ?`),
      nextExpiry: this.db.prepare<[], { t: number | null }>(
        `SELECT min(expires_at) AS t FROM commands WHERE status NOT IN (${FINAL})`,
      ),
      count: this.db.prepare<[], { n: number }>('SELECT count(*) AS n FROM commands'),
    };
  }

  add(command: Command, origin: string): StoredCommand {
    this.statements.insert.run(
      command.commandId,
      command.deviceId,
      command.name,
      command.payload,
      command.expiresAtMs,
      Date.now(),
      origin,
    );
    return this.get(command.commandId)!;
  }

  get(commandId: string): StoredCommand | undefined {
    const row = this.statements.get.get(commandId);
    return row && toCommand(row);
  }

  advance(
    commandId: string,
    status: CommandStatus,
    result: { payload?: Buffer; message?: string } = {},
  ): StoredCommand | undefined {
    const current = this.get(commandId);
    if (!current || !isAdvance(current.status, status)) return current;
    const payload = result.payload ?? current.resultPayload;
    const message = result.message ?? current.message;
    this.statements.update.run(status, payload, message, commandId);
    return { ...current, status, resultPayload: payload, message };
  }

  pendingFor(deviceId: string): StoredCommand[] {
    return this.statements.pendingFor.all(deviceId).map(toCommand);
  }

  unreported(): StoredCommand[] {
    return this.statements.unreported.all().map(toCommand);
  }

  confirmed(commandId: string, status: CommandStatus): void {
    const current = this.get(commandId);
    if (!current || current.status !== status) return; // confirms an older status: a newer one is still to report
    this.statements.confirm.run(status, commandId);
    this.statements.forget.run(commandId);
  }

  expiredAt(nowMs: number): StoredCommand[] {
    return this.statements.expired.all(nowMs).map(toCommand);
  }

  nextExpiryMs(): number | undefined {
    return this.statements.nextExpiry.get()?.t ?? undefined;
  }

  get size(): number {
    return this.statements.count.get()!.n;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
