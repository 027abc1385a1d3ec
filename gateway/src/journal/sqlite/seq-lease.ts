/**
 * The seq lease: a file of its own (journal.seq-lease) that bounds the seqs given out. Before a commit would
 * pass it, the lease moves SEQ_LEASE_BLOCK further and is fsynced; a clean close brings it down to the last seq.
 * It is read only when the database is damaged beyond telling its own last seq (heal.ts), so that a salvaged
 * journal never gives out a seq twice. Each move is fsynced, file and folder, so a power cut keeps it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileDurably } from './files.ts';

export const SEQ_LEASE_FILE = 'journal.seq-lease';
/** Seqs a lease covers ahead: one small fsynced write per this many records. */
const SEQ_LEASE_BLOCK = 10_000;

export class SeqLease {
  private lease: number;

  constructor(private readonly dir: string) {
    this.lease = readSeqLease(dir);
  }

  /** Makes sure the lease covers `seq` before any seq up to it is given out (moving it a block past it if not). */
  cover(seq: number): void {
    if (seq <= this.lease) return;
    this.lease = seq + SEQ_LEASE_BLOCK;
    writeSeqLease(this.dir, this.lease);
  }

  /** At a clean close: the lease comes down to the last seq, so that after a clean stop it is exact. */
  settle(lastSeq: number): void {
    if (this.lease <= lastSeq) return;
    try {
      writeSeqLease(this.dir, lastSeq);
      this.lease = lastSeq;
    } catch {
      // A lease ahead of the last seq is still a valid bound.
    }
  }
}

/** The seq lease kept in `dir` (0 when there is none). */
export function readSeqLease(dir: string): number {
  try {
    const value = Number(readFileSync(join(dir, SEQ_LEASE_FILE), 'utf8').trim());
    return Number.isSafeInteger(value) && value > 0 ? value : 0;
  } catch {
    return 0;
  }
}

/** Writes the lease so that a crash leaves the old one or the new one, never a torn one. */
function writeSeqLease(dir: string, lease: number): void {
  // Durable only once the folder is fsynced after the rename (POSIX rename(); see core's durable-dir.ts): without
  // it a power cut brings back the old, lower lease, and a journal healed after it could give out seqs twice.
  writeFileDurably(join(dir, SEQ_LEASE_FILE), `${lease}\n`);
}
