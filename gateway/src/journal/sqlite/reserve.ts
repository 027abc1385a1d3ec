/**
 * Room kept back for freeing rows. On a file system that is full, SQLite cannot free rows either: a DELETE
 * writes its pages to the WAL first, and the WAL cannot grow. Acks would then never free the space that would end
 * the full disk. So the journal keeps a file of its own, journal.reserve, whose blocks are really allocated
 * (written, not sparse), and gives it up when SQLite reports the disk full (SQLITE_FULL) or when an open finds the
 * file system without room: its blocks become the room that the commits freeing rows, the checkpoints and the
 * incremental vacuum need. It is made again by the probe once the file system has room for it and a margin;
 * until then appends are refused (group-commit.ts).
 *
 * Size: a 16th of the file system, between 64 KiB and 8 MiB: room for a few release commits and vacuum steps
 * between checkpoints (maintenance.ts keeps them small while the reserve is given up).
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, statfsSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fsyncDir } from '@fleetgate/core/sqlite';

export const RESERVE_FILE = 'journal.reserve';
const MIN_RESERVE_BYTES = 64 << 10;
const MAX_RESERVE_BYTES = 8 << 20;
const WRITE_CHUNK = 64 << 10;

export interface FileSystemRoom {
  /** Bytes an unprivileged process can still write. */
  free: number;
  total: number;
}

/** Free space the file system must have (besides the reserve) before appends resume after a full disk: an 8th of it, at most 16 MiB. */
export function probeMargin(totalBytes: number): number {
  return Math.min(16 << 20, Math.floor(totalBytes / 8));
}

export function roomOf(dir: string): FileSystemRoom {
  const fs = statfsSync(dir);
  return { free: fs.bavail * fs.bsize, total: fs.blocks * fs.bsize };
}

export class Reserve {
  readonly bytes: number;
  private held: boolean;
  private readonly file: string;

  /**
   * The reserve in `dir`, before the journal opens there. Opening writes (the WAL's recovery, the clean-close
   * row taken): on a file system short of room the reserve is given up at once, and its blocks are what the open
   * writes with; the journal then opens `full` until a probe can make the reserve again (make()).
   */
  constructor(private readonly dir: string) {
    this.file = join(dir, RESERVE_FILE);
    const { free, total } = roomOf(dir);
    this.bytes = Math.min(MAX_RESERVE_BYTES, Math.max(MIN_RESERVE_BYTES, Math.floor(total / 16 / 4096) * 4096));
    this.held = size(this.file) === this.bytes;
    if (free < this.bytes + probeMargin(total)) this.giveUp();
  }

  /** Is the reserve in place (false: given up, the disk was full)? */
  get isHeld(): boolean {
    return this.held;
  }

  /** Gives the reserve's blocks back to the file system. Idempotent. */
  giveUp(): void {
    rmSync(this.file, { force: true });
    rmSync(`${this.file}.tmp`, { force: true });
    this.held = false;
  }

  /**
   * Makes the reserve (again) if the file system has room for it and a margin (probeMargin). Throws (code
   * SQLITE_FULL, as SQLite would) if not; a half-written reserve is removed, never left behind.
   */
  make(): void {
    if (this.held) return;
    const { free, total } = roomOf(this.dir);
    const margin = probeMargin(total);
    if (free < this.bytes + margin)
      throw Object.assign(new Error(`${free} bytes free on the journal's file system, ${this.bytes + margin} needed`), {
        code: 'SQLITE_FULL',
      });
    const tmp = `${this.file}.tmp`;
    try {
      const fd = openSync(tmp, 'w');
      try {
        const chunk = Buffer.alloc(WRITE_CHUNK);
        for (let written = 0; written < this.bytes; written += WRITE_CHUNK)
          writeSync(fd, chunk, 0, Math.min(WRITE_CHUNK, this.bytes - written));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.file);
      fsyncDir(this.dir);
    } catch (err: unknown) {
      rmSync(tmp, { force: true });
      const code = (err as { code?: unknown }).code;
      throw code === 'ENOSPC' || code === 'EDQUOT' ? Object.assign(new Error(String(err)), { code: 'SQLITE_FULL' }) : err;
    }
    this.held = true;
  }
}

/** SQLite's word for a full disk (and what the reserve says when it cannot be made). */
export function isDiskFull(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'SQLITE_FULL';
}

function size(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return -1;
  }
}
