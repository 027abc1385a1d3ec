/**
 * A file system that loses what a power cut loses (python/lazyfs.py, a FUSE file system after LazyFS): data
 * reaches its backing folder only on fsync of the file, directory entries only on fsync of the directory. `cut()`
 * is the power going (every later operation fails with EIO, optionally tearing the last unsynced write at a page
 * boundary); `remount()` then shows what survived. Needs /dev/fuse, Debian's python3-fusepy and fuse3
 * (fusermount3): LAZYFS below skips the test where they are missing.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SystemProgram } from './system-packages.ts';

const SCRIPT = fileURLToPath(new URL('./python/lazyfs.py', import.meta.url));
const PYTHON = '/usr/bin/python3';

export const LAZYFS: SystemProgram = {
  what: "FUSE (/dev/fuse, Debian's fuse3 and python3-fusepy for /usr/bin/python3)",
  install: 'apt-get install fuse3 python3-fusepy',
  locate: () => {
    try {
      accessSync('/dev/fuse', constants.R_OK | constants.W_OK);
    } catch {
      return undefined;
    }
    if (spawnSync('fusermount3', ['-V']).status !== 0) return undefined;
    return spawnSync(PYTHON, ['-c', 'import fusepy']).status === 0 ? PYTHON : undefined;
  },
};

export interface CutReport {
  tornBytes: number;
  /** Bytes of pages written and never fsynced, thrown away (whole pages). */
  unsyncedPagesBytes: number;
  fsyncs: number;
  dirFsyncs: number;
  writes: number;
}

/** Every mount made here and not yet unmounted: `unmountAll()` in afterEach. */
const mounted = new Set<LazyFs>();

export class LazyFs {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  private constructor(
    /** Where the durable state lives (by inode: see lazyfs.py). */
    readonly backing: string,
    /** Where the file system is mounted. */
    readonly path: string,
    private readonly control: string,
    private readonly capacityBytes: number,
  ) {}

  /**
   * Mounts a fresh (or, with an existing `root`, the surviving) file system; `root` holds backing, mount, socket.
   * `capacityBytes`: writes beyond it fail with ENOSPC (a full disk; 0: no limit).
   */
  static async mount(root: string, { capacityBytes = 0 } = {}): Promise<LazyFs> {
    const fs = new LazyFs(join(root, 'backing'), join(root, 'mnt'), join(root, 'control.sock'), capacityBytes);
    mkdirSync(fs.backing, { recursive: true });
    mkdirSync(fs.path, { recursive: true });
    await fs.start();
    mounted.add(fs);
    return fs;
  }

  private start(): Promise<void> {
    const child = (this.child = spawn(
      PYTHON,
      ['-W', 'ignore', SCRIPT, this.backing, this.path, this.control, String(this.capacityBytes)],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    ));
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`lazyfs did not mount in 10 s: ${stderr}`)), 10_000);
      child.stdout!.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('lazyfs ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`lazyfs exited (${code}) before mounting: ${stderr}`));
      });
    });
  }

  /** The power goes: nothing written from now on reaches the backing folder; `torn` tears the last unsynced write. */
  cut({ torn = false } = {}): Promise<CutReport> {
    return this.command(torn ? 'cut torn' : 'cut') as Promise<CutReport>;
  }

  stats(): Promise<Pick<CutReport, 'fsyncs' | 'dirFsyncs' | 'writes'>> {
    return this.command('stats') as Promise<CutReport>;
  }

  private command(line: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(this.control);
      let answer = '';
      socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
      socket.on('end', () => {
        try {
          resolve(JSON.parse(answer));
        } catch (err: unknown) {
          reject(new Error(`lazyfs answered ${JSON.stringify(answer)} to ${line}`, { cause: err }));
        }
      });
      socket.on('error', reject);
      socket.end(`${line}\n`);
    });
  }

  /** Unmounts (the processes using it must have exited) and waits for the file system's process to end. */
  async unmount(): Promise<void> {
    if (!this.child || this.child.exitCode !== null) return;
    if (spawnSync('fusermount3', ['-u', this.path]).status !== 0) {
      spawnSync('umount', ['-l', this.path]);
      this.child.kill('SIGKILL');
    }
    await this.exited;
    mounted.delete(this);
  }

  /** Unmounts and mounts again: the file system then holds only what was durable. */
  async remount(): Promise<void> {
    await this.unmount();
    await this.start();
    mounted.add(this);
  }
}

export async function unmountAll(): Promise<void> {
  await Promise.all([...mounted].map((fs) => fs.unmount()));
}
