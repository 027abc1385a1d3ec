/**
 * SQLite for fleetgate's stores (`@fleetgate/core/sqlite`): one way to open a database (WAL, the durability
 * asked for) and a chunked INSERT.
 *
 * better-sqlite3 is loaded when the first database is opened, not when this module is: a package that only
 * may use SQLite (the device SDK's outbox) declares it as an optional peer, and a device that never opens an
 * outbox file needs no native addon installed.
 */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import type { Durability } from './durability.ts';
import { mkdirDurable } from './durable-dir.ts';
import { FleetgateError } from './errors.ts';

export { fsyncDir, mkdirDurable } from './durable-dir.ts';

export type SqliteDatabase = BetterSqlite3.Database;

export interface OpenSqliteOptions {
  durability: Durability;
  readonly?: boolean;
}

/** better-sqlite3 is not installed where it is needed; the message says what to install. */
export class SqliteUnavailableError extends FleetgateError {
  override name = 'SqliteUnavailableError';
}

let driver: typeof BetterSqlite3 | undefined;

function loadDriver(): typeof BetterSqlite3 {
  if (driver) return driver;
  try {
    driver = createRequire(import.meta.url)('better-sqlite3') as typeof BetterSqlite3;
  } catch (err: unknown) {
    if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err;
    throw new SqliteUnavailableError('SQLite storage needs the better-sqlite3 package: npm install better-sqlite3@12', {
      cause: err,
    });
  }
  return driver;
}

/**
 * Opens (creating the folder and file if needed) a SQLite database in WAL mode with the given durability
 * (see durability.ts: power is synchronous=FULL, process is NORMAL).
 */
export function openSqlite(file: string, { durability, readonly = false }: OpenSqliteOptions): SqliteDatabase {
  const Database = loadDriver();
  // The folder made durable too: SQLite fsyncs the folder its WAL is created in, not that folder's parent.
  if (!readonly) mkdirDurable(dirname(file));
  const db = new Database(file, { readonly, fileMustExist: readonly });
  // A writer and the readers (export, stats) never block each other in WAL mode; a reader waits at most 5 s.
  db.pragma('busy_timeout = 5000');
  if (!readonly) {
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${durability === 'power' ? 'FULL' : 'NORMAL'}`);
  }
  return db;
}

/**
 * INSERT of many rows, `chunk` rows per statement: in better-sqlite3 each run() crosses into native code and
 * steps a statement, so ten rows per statement cost about a third less CPU per row than one.
 * `bind(row, params, offset, index)` writes the values of rows[index] into params from offset on.
 */
export class BulkInsert<T> {
  private readonly many;
  private readonly one;
  private readonly params: unknown[];
  private readonly single: unknown[];

  constructor(
    db: SqliteDatabase,
    /** e.g. "INSERT INTO t (a, b, c)" or "INSERT OR IGNORE INTO t (a, b, c)" */
    head: string,
    private readonly columns: number,
    private readonly bind: (row: T, params: unknown[], offset: number, index: number) => void,
    private readonly chunk = 16,
    /** e.g. "RETURNING id", for all() */
    tail = '',
  ) {
    const tuple = `(${Array(columns).fill('?').join(', ')})`;
    this.many = db.prepare(`${head} VALUES ${Array(chunk).fill(tuple).join(', ')} ${tail}`);
    this.one = db.prepare(`${head} VALUES ${tuple} ${tail}`);
    this.params = Array.from({ length: columns * chunk });
    this.single = Array.from({ length: columns });
  }

  /** Like run(), for a statement with RETURNING: the rows it returned, in order. */
  all<R>(rows: readonly T[]): R[] {
    const out: R[] = [];
    let i = 0;
    for (; i + this.chunk <= rows.length; i += this.chunk) {
      for (let k = 0; k < this.chunk; k++) this.bind(rows[i + k]!, this.params, k * this.columns, i + k);
      for (const row of this.many.all(this.params)) out.push(row as R);
    }
    for (; i < rows.length; i++) {
      this.bind(rows[i]!, this.single, 0, i);
      for (const row of this.one.all(this.single)) out.push(row as R);
    }
    return out;
  }

  /** Inserts every row (call inside a transaction); returns the rows SQLite reports as changed. */
  run(rows: readonly T[]): number {
    let changes = 0;
    let i = 0;
    for (; i + this.chunk <= rows.length; i += this.chunk) {
      for (let k = 0; k < this.chunk; k++) this.bind(rows[i + k]!, this.params, k * this.columns, i + k);
      changes += this.many.run(this.params).changes;
    }
    for (; i < rows.length; i++) {
      this.bind(rows[i]!, this.single, 0, i);
      changes += this.one.run(this.single).changes;
    }
    return changes;
  }
}
