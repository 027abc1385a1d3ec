import { randomUUID } from 'node:crypto';
import {
  assertRoom,
  DEFAULT_OUTBOX_LIMITS,
  type Outbox,
  type OutboxEntry,
  type OutboxLimits,
  type OutboxMessage,
} from './outbox.ts';

/** The default outbox: bounded, in memory, lost with the process (its epoch too). */
export class MemoryOutbox implements Outbox {
  readonly epoch = randomUUID();
  private entries: OutboxEntry[] = [];
  private head = 0;
  private last = 0;
  private heldBytes = 0;

  constructor(private readonly limits: OutboxLimits = DEFAULT_OUTBOX_LIMITS) {}

  get lastSeq(): number {
    return this.last;
  }

  get size(): number {
    return this.entries.length - this.head;
  }

  get bytes(): number {
    return this.heldBytes;
  }

  add(message: OutboxMessage): OutboxEntry {
    assertRoom(this.size, this.heldBytes, message.payload.length, this.limits);
    const entry = { ...message, seq: ++this.last };
    this.entries.push(entry);
    this.heldBytes += message.payload.length;
    return entry;
  }

  flush(): void {}

  after(afterSeq: number, max: number): OutboxEntry[] {
    const first = this.size > 0 ? this.entries[this.head]!.seq : this.last + 1;
    const start = this.head + Math.max(0, afterSeq + 1 - first);
    return this.entries.slice(start, start + max);
  }

  ackThrough(seq: number): void {
    while (this.head < this.entries.length && this.entries[this.head]!.seq <= seq) {
      this.heldBytes -= this.entries[this.head]!.payload.length;
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 >= this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }

  close(): void {}
}
