/**
 * A revocation list: a text file, one entry per line, `#` starts a comment.
 *   jti:<token id>     revokes one token
 *   sub:<id>           revokes every token of a device or gateway (until the line is removed)
 * The file is re-read when it changes (its stat polled every second, which also catches editors that replace
 * the file; the stat is taken with each read, so no change can slip between a read and the first poll) and on
 * reload() (SIGHUP). A file that cannot be read keeps the last good list and says why.
 */
import { EventEmitter } from 'node:events';
import { readFileSync, statSync } from 'node:fs';
import { ConfigError } from '@fleetgate/core';

export interface RevocationEntries {
  jtis: ReadonlySet<string>;
  subjects: ReadonlySet<string>;
}

export class RevocationList extends EventEmitter<{ changed: [RevocationEntries]; error: [Error] }> {
  private entries: RevocationEntries = { jtis: new Set(), subjects: new Set() };
  private version = '';
  private poll: NodeJS.Timeout | undefined;

  /** Reads `file` now (failing with a ConfigError naming `field` if it cannot) and watches it. */
  constructor(
    readonly file: string,
    private readonly field = '--revocations',
    watch = true,
  ) {
    super();
    this.entries = this.read();
    if (watch) {
      this.poll = setInterval(() => {
        if (fileVersion(this.file) !== this.version) this.reload();
      }, 1000);
      this.poll.unref();
    }
  }

  isRevoked(claims: { jti?: string; sub?: string }): boolean {
    return (
      (claims.jti !== undefined && this.entries.jtis.has(claims.jti)) ||
      (claims.sub !== undefined && this.entries.subjects.has(claims.sub))
    );
  }

  get size(): number {
    return this.entries.jtis.size + this.entries.subjects.size;
  }

  /** Reads the file again; on success announces 'changed', else keeps the old list and emits 'error'. */
  reload(): void {
    try {
      this.entries = this.read();
      this.emit('changed', this.entries);
    } catch (err: unknown) {
      this.emit('error', err instanceof Error ? err : new Error(String(err)));
    }
  }

  close(): void {
    clearInterval(this.poll);
    this.poll = undefined;
  }

  private read(): RevocationEntries {
    let text: string;
    try {
      this.version = fileVersion(this.file);
      text = readFileSync(this.file, 'utf8');
    } catch (err: unknown) {
      throw new ConfigError(
        this.field,
        `cannot read ${this.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
    const jtis = new Set<string>();
    const subjects = new Set<string>();
    text.split('\n').forEach((raw, i) => {
      const line = raw.replace(/#.*/, '').trim();
      if (line === '') return;
      const match = /^(jti|sub):(\S+)$/.exec(line);
      if (!match)
        throw new ConfigError(this.field, `${this.file} line ${i + 1}: "${line.slice(0, 60)}" is not jti:<id> or sub:<id>`);
      (match[1] === 'jti' ? jtis : subjects).add(match[2]!);
    });
    return { jtis, subjects };
  }
}

/** What identifies one state of a file: inode, size and modification time ('' if it cannot be read). */
function fileVersion(file: string): string {
  try {
    const { ino, size, mtimeMs } = statSync(file);
    return `${ino}:${size}:${mtimeMs}`;
  } catch {
    return '';
  }
}
