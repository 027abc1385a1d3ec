/**
 * Directory entries that survive a power cut. POSIX makes a file's data durable by fsync of the file, but the
 * entry naming it (a creation, a rename) only by fsync of the directory holding it (IEEE Std 1003.1, fsync();
 * Linux's fsync(2): "Calling fsync() does not necessarily ensure that the entry in the directory containing the
 * file has also reached disk. For that an explicit fsync() on a file descriptor for the directory is also
 * needed."). SQLite fsyncs the directory of a WAL or journal file it creates; what it cannot know is that the
 * folder itself was just made, so a data folder made by `mkdir -p` is fsynced here into its parent. The
 * power-cut tests (test/power/) fail without it: the whole data folder is gone after the first cut.
 */
import { closeSync, fsyncSync, mkdirSync, openSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** fsync of a directory: what was created in, renamed into or removed from it is then durable. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } catch (err: unknown) {
    // A file system that cannot fsync a directory (some network ones) says EINVAL: it has nothing to make durable.
    if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
  } finally {
    closeSync(fd);
  }
}

/** `mkdir -p dir`, each folder it made then fsynced into its parent, so the path survives a power cut. */
export function mkdirDurable(dir: string): void {
  const first = mkdirSync(dir, { recursive: true });
  if (first === undefined) return;
  const top = resolve(first);
  for (let made = resolve(dir); ; made = dirname(made)) {
    fsyncDir(dirname(made));
    if (made === top || dirname(made) === made) return;
  }
}
