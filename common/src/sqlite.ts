import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export type SqliteDatabase = Database.Database;

/**
 * How much a commit survives:
 * - `power`: synchronous=FULL; in WAL mode every commit fsyncs the WAL, so a commit survives power loss.
 * - `process`: synchronous=NORMAL; commits survive a crash of the process (the OS still has them), but the
 *   last ones may be lost on power loss. The database is never corrupted in either mode.
 */
export type Durability = 'power' | 'process';
export const DURABILITIES: readonly Durability[] = ['power', 'process'];

export interface OpenSqliteOptions {
  durability: Durability;
  readonly?: boolean;
}

/** Opens (creating the folder and file if needed) a SQLite database in WAL mode with the given durability. */
export function openSqlite(file: string, { durability, readonly = false }: OpenSqliteOptions): SqliteDatabase {
  if (!readonly) mkdirSync(dirname(file), { recursive: true });
  const db = new Database(file, { readonly, fileMustExist: readonly });
  // A writer and the readers (export, stats) never block each other in WAL mode; a reader waits at most 5 s.
  db.pragma('busy_timeout = 5000');
  if (!readonly) {
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${durability === 'power' ? 'FULL' : 'NORMAL'}`);
  }
  return db;
}
