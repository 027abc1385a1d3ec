/**
 * Housekeeping of the journal's file: freed pages go back to the file system by incremental vacuum, a step at a
 * time; the WAL is moved into the database file at a clean stop; and after a full disk, a probe tells whether
 * writes would succeed again.
 */
import type { Clock } from '@fleetgate/core';
import type { SqliteDatabase } from '@fleetgate/core/sqlite';
import { probeMargin, roomOf, type Reserve } from './reserve.ts';

/** Free pages above which a commit is followed by an incremental vacuum. */
const VACUUM_FREE_PAGES = 256;
/** Pages given back per step, and steps at most this often: ~2 MB at ~5 a second, so no step holds up a commit long. */
const VACUUM_STEP_PAGES = 512;
const VACUUM_EVERY_MS = 200;

class ProbeRollback extends Error {}

export class Maintenance {
  private lastVacuum = 0;
  private readonly probeTx: () => void;

  constructor(
    private readonly db: SqliteDatabase,
    private readonly dir: string,
    private readonly clock: Clock,
    private readonly reserve: Reserve,
  ) {
    const probeRow = db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('probe', zeroblob(65536))");
    this.probeTx = db.transaction(() => {
      probeRow.run();
      throw new ProbeRollback();
    });
  }

  /**
   * Rows are freed oldest first, so free pages gather at the front of the file and pages in use at its end: giving
   * the free ones back moves the used ones into the holes. Worth it when there is much to give back and little to
   * move, i.e. once a backlog has (nearly) drained; during a drain the free pages are simply reused.
   */
  vacuumIfWorthIt(): void {
    const now = this.clock.now();
    if (now - this.lastVacuum < VACUUM_EVERY_MS) return;
    this.lastVacuum = now;
    if (!this.reserve.isHeld) return this.vacuumOnFullDisk();
    const free = this.db.pragma('freelist_count', { simple: true }) as number;
    if (free <= VACUUM_FREE_PAGES) return;
    const used = (this.db.pragma('page_count', { simple: true }) as number) - free;
    if (used <= free / 8) this.db.pragma(`incremental_vacuum(${VACUUM_STEP_PAGES})`);
  }

  /**
   * While the disk is full (the reserve given up), every free page goes back to the file system, however many
   * used pages that moves, in steps small enough for the reserve's room in the WAL, each followed by a checkpoint
   * so that the next write starts the WAL over instead of growing it. The file system's free space is what ends
   * the full disk (probe).
   */
  private vacuumOnFullDisk(): void {
    const free = this.db.pragma('freelist_count', { simple: true }) as number;
    if (free > 0) {
      const pageSize = this.db.pragma('page_size', { simple: true }) as number;
      const step = Math.max(4, Math.min(VACUUM_STEP_PAGES, Math.floor(this.reserve.bytes / pageSize / 4)));
      this.db.pragma(`incremental_vacuum(${Math.min(free, step)})`);
    }
    this.db.pragma('wal_checkpoint(PASSIVE)');
  }

  /**
   * A passive checkpoint: with synchronous=NORMAL it fsyncs the WAL before copying it into the database file
   * (and the file after), so every commit before it survives a power cut. It waits for no reader.
   */
  syncWal(): void {
    this.db.pragma('wal_checkpoint(PASSIVE)');
  }

  /** Moves the WAL into the database file and truncates it (for a clean stop). */
  checkpoint(): void {
    this.db.pragma('wal_checkpoint(TRUNCATE)');
  }

  /**
   * Does the journal take writes again after SQLITE_FULL? Throws if not. The file system must have room for the
   * reserve (made again here, reserve.ts) and a margin of a few batches, and the database must be able to grow by a
   * batch's worth (a 64 KiB row, written and rolled back: nothing stays, but pages must be found for it, which is
   * where a max_page_count cap refuses).
   */
  probe(): void {
    const { free, total } = roomOf(this.dir);
    const margin = probeMargin(total);
    const needed = margin + (this.reserve.isHeld ? 0 : this.reserve.bytes);
    if (free < needed)
      throw Object.assign(new Error(`${free} bytes free on the journal's file system, ${needed} needed`), {
        code: 'SQLITE_FULL',
      });
    try {
      this.probeTx();
    } catch (err: unknown) {
      if (!(err instanceof ProbeRollback)) throw err;
    }
    this.reserve.make();
  }
}
