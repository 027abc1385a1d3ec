/**
 * The power-cut file system itself (test/support/lazyfs.ts): what a cut keeps is exactly what POSIX fsync
 * promises, file data by fsync of the file, directory entries by fsync of the directory, and no more.
 */
import assert from 'node:assert/strict';
import {
  closeSync,
  existsSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LAZYFS, LazyFs, unmountAll } from '../support/lazyfs.ts';
import { requireProgram } from '../support/system-packages.ts';

/** Writes `data` to `file` and fsyncs the file (not its directory). */
function writeSynced(file: string, data: string | Buffer): void {
  const fd = openSync(file, 'w');
  try {
    if (typeof data === 'string') writeSync(fd, data);
    else writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

describe('lazyfs (power-cut file system)', function () {
  this.timeout(30_000);
  let root: string;
  let fs: LazyFs;

  before(function () {
    requireProgram(this, LAZYFS);
  });
  beforeEach(async () => {
    root = mkdtempSync(join(tmpdir(), 'fleetgate-lazyfs-'));
    fs = await LazyFs.mount(root);
  });
  afterEach(async () => {
    await unmountAll();
    rmSync(root, { recursive: true, force: true });
  });

  const cutAndRemount = async (torn = false) => {
    const report = await fs.cut({ torn });
    await fs.remount();
    return report;
  };

  it('lazyfs - data written but not fsynced is gone after a cut; fsynced (and named by a synced directory) it stays', async () => {
    writeFileSync(join(fs.path, 'named'), 'data never synced');
    writeSynced(join(fs.path, 'kept'), 'synced');
    fsyncDir(fs.path);
    writeFileSync(join(fs.path, 'kept'), 'overwritten, not synced');
    writeFileSync(join(fs.path, 'lost'), 'never synced');
    const report = await cutAndRemount();
    assert.ok(report.unsyncedPagesBytes > 0);
    assert.equal(existsSync(join(fs.path, 'lost')), false);
    // Its name was made durable by the directory fsync, its data by nothing.
    assert.equal(readFileSync(join(fs.path, 'named'), 'utf8'), '');
    assert.equal(readFileSync(join(fs.path, 'kept'), 'utf8'), 'synced');
  });

  it('lazyfs - a file fsynced whose directory was not is gone after a cut (its entry was never durable)', async () => {
    writeSynced(join(fs.path, 'orphan'), 'data synced, name not');
    await cutAndRemount();
    assert.equal(existsSync(join(fs.path, 'orphan')), false);
  });

  it('lazyfs - a rename or unlink without a directory fsync is undone by a cut; with one it stays', async () => {
    writeSynced(join(fs.path, 'a'), 'A');
    writeSynced(join(fs.path, 'b'), 'B');
    fsyncDir(fs.path);
    renameSync(join(fs.path, 'a'), join(fs.path, 'a2'));
    unlinkSync(join(fs.path, 'b'));
    await cutAndRemount();
    assert.equal(readFileSync(join(fs.path, 'a'), 'utf8'), 'A');
    assert.equal(existsSync(join(fs.path, 'a2')), false);
    assert.equal(readFileSync(join(fs.path, 'b'), 'utf8'), 'B');

    // The way a lease or a config file is replaced: write a temp file, fsync it, rename it over, fsync the folder.
    writeSynced(join(fs.path, 'a.tmp'), 'A, second version');
    renameSync(join(fs.path, 'a.tmp'), join(fs.path, 'a'));
    unlinkSync(join(fs.path, 'b'));
    fsyncDir(fs.path);
    await cutAndRemount();
    assert.equal(readFileSync(join(fs.path, 'a'), 'utf8'), 'A, second version');
    assert.equal(existsSync(join(fs.path, 'a.tmp')), false);
    assert.equal(existsSync(join(fs.path, 'b')), false);
  });

  it('lazyfs - a folder made but not fsynced in its parent is gone with what it holds, even if that was synced', async () => {
    mkdirSync(join(fs.path, 'data'));
    writeSynced(join(fs.path, 'data', 'file'), 'x');
    fsyncDir(join(fs.path, 'data'));
    await cutAndRemount();
    assert.equal(existsSync(join(fs.path, 'data')), false);
  });

  it('lazyfs - a torn cut keeps a page-aligned prefix of the last unsynced write and drops the rest', async () => {
    const file = join(fs.path, 'pages');
    writeSynced(file, Buffer.alloc(4 * 4096, 'o'));
    fsyncDir(fs.path);
    const fd = openSync(file, 'r+');
    // One write of pages 1-3 (the kernel splits unaligned writes at page boundaries, so this one is aligned).
    writeSync(fd, Buffer.alloc(3 * 4096, 'n'), 0, 3 * 4096, 4096);
    closeSync(fd);
    const report = await cutAndRemount(true);
    // Its first page, and half of the two after it, reached the disk.
    assert.equal(report.tornBytes, 2 * 4096);
    const after = readFileSync(file);
    assert.equal(after.length, 4 * 4096);
    assert.equal(after.subarray(0, 4096).toString(), 'o'.repeat(4096));
    assert.equal(after.subarray(4096, 3 * 4096).toString(), 'n'.repeat(2 * 4096));
    assert.equal(after.subarray(3 * 4096).toString(), 'o'.repeat(4096));
  });

  it('lazyfs - after a cut every operation fails with EIO, so nothing later becomes durable', async () => {
    writeSynced(join(fs.path, 'before'), 'b');
    await fs.cut();
    assert.throws(() => writeSynced(join(fs.path, 'after'), 'a'), { code: 'EIO' });
    await fs.remount();
    assert.equal(existsSync(join(fs.path, 'after')), false);
    assert.equal(existsSync(join(fs.path, 'before')), false);
  });

  it('lazyfs - truncation is data: undone by a cut unless fsynced', async () => {
    const file = join(fs.path, 't');
    writeSynced(file, 'twelve bytes');
    fsyncDir(fs.path);
    truncateSync(file, 3);
    await cutAndRemount();
    assert.equal(readFileSync(file, 'utf8'), 'twelve bytes');
    const fd = openSync(file, 'r+');
    ftruncateSync(fd, 3);
    fsyncSync(fd);
    closeSync(fd);
    await cutAndRemount();
    assert.equal(readFileSync(file, 'utf8'), 'twe');
  });

  it('lazyfs - with a capacity, a write beyond it fails with ENOSPC (a full disk)', async () => {
    await fs.unmount();
    fs = await LazyFs.mount(join(root, 'small'), { capacityBytes: 64 * 1024 });
    writeSynced(join(fs.path, 'fits'), Buffer.alloc(60 * 1024));
    assert.throws(() => writeSynced(join(fs.path, 'too-much'), Buffer.alloc(8 * 1024)), { code: 'ENOSPC' });
  });
});
