import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';

/**
 * Overwrites `length` bytes at `offset` of `file` with a pattern no SQLite page or WAL frame holds; `fsync`: made
 * durable, so that a power cut (test/support/lazyfs.ts) keeps the damage.
 */
export function scribble(file: string, offset: number, length: number, { fsync = false } = {}): void {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, Buffer.alloc(length, 0xa5), 0, length, offset);
    if (fsync) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
