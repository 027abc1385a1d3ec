import { closeSync, openSync, writeSync } from 'node:fs';

/** Overwrites `length` bytes at `offset` of `file` with a pattern no SQLite page or WAL frame holds. */
export function scribble(file: string, offset: number, length: number): void {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, Buffer.alloc(length, 0xa5), 0, length, offset);
  } finally {
    closeSync(fd);
  }
}
