/**
 * The seq lease under a power cut (test/support/lazyfs.ts): a lease moved is durable, file and folder, so a
 * journal healed after a cut never gives out a seq the lost journal gave out. Without the folder fsync after the
 * rename (seq-lease.ts) the cut brings the old lease back and this test fails.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mkdirDurable } from '@fleetgate/core/sqlite';
import { readSeqLease, SeqLease } from '../../gateway/src/journal/sqlite/seq-lease.ts';
import { LAZYFS, LazyFs, unmountAll } from '../support/lazyfs.ts';
import { requireProgram } from '../support/system-packages.ts';

describe('seq lease (on a power-cut file system)', function () {
  this.timeout(30_000);
  let root: string;

  before(function () {
    requireProgram(this, LAZYFS);
  });
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'fleetgate-lease-'));
  });
  afterEach(async () => {
    await unmountAll();
    rmSync(root, { recursive: true, force: true });
  });

  it('seq lease - a lease moved before a power cut is the lease after it', async () => {
    const fs = await LazyFs.mount(root);
    const dir = join(fs.path, 'journal');
    mkdirDurable(dir);
    new SeqLease(dir).cover(1);
    const first = readSeqLease(dir);
    assert.ok(first > 1);
    await fs.cut();
    await fs.remount();
    assert.equal(readSeqLease(dir), first);
    new SeqLease(dir).cover(first + 1);
    const moved = readSeqLease(dir);
    assert.ok(moved > first);
    await fs.cut();
    await fs.remount();
    assert.equal(readSeqLease(dir), moved);
  });
});
