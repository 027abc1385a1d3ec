/**
 * The outbox: messages a device has taken (send() was called) and the gateway has not yet committed. One
 * interface, one file per implementation: outbox-memory.ts (the default: lost if the device's process dies,
 * as with the AWS and Azure device SDKs) and outbox-sqlite.ts (durable: a device that reboots loses nothing).
 *
 * Seqs: 1, 2, 3, ... within an epoch, never reused, never skipped. The epoch is random and belongs to the
 * outbox: a new outbox is a new epoch, so a device that lost its outbox never has its new messages taken for
 * resends of old ones.
 */

import { OutboxFullError } from '../errors.ts';

export interface OutboxMessage {
  stream: string;
  contentType: string;
  /** When the device measured, ms since the epoch (0 = unknown). */
  timeMs: number;
  payload: Buffer;
}

export interface OutboxEntry extends OutboxMessage {
  seq: number;
}

export interface OutboxLimits {
  /** Messages held at most. */
  maxMessages: number;
  /** Payload bytes held at most. */
  maxBytes: number;
}

export const DEFAULT_OUTBOX_LIMITS: OutboxLimits = { maxMessages: 10_000, maxBytes: 16 << 20 };

/** Throws OutboxFullError if an outbox holding `size` messages of `bytes` cannot take `payloadBytes` more. */
export function assertRoom(size: number, bytes: number, payloadBytes: number, limits: OutboxLimits): void {
  if (size >= limits.maxMessages || bytes + payloadBytes > limits.maxBytes) {
    throw new OutboxFullError(
      `the outbox holds ${size} messages (${bytes} bytes), its limit: ${limits.maxMessages} / ${limits.maxBytes}`,
    );
  }
}

export interface Outbox {
  readonly epoch: string;
  /** The seq of the last message taken (0 for a new outbox). */
  readonly lastSeq: number;
  /** Messages held (taken, not yet acked). */
  readonly size: number;
  readonly bytes: number;
  /** Takes a message, giving it the next seq. Throws OutboxFullError at the bound. */
  add(message: OutboxMessage): OutboxEntry;
  /** Makes what was added durable (a durable outbox commits; memory has nothing to do). Only then is it sent. */
  flush(): void;
  /** Up to `max` flushed entries with seq > afterSeq, in seq order. */
  after(afterSeq: number, max: number): OutboxEntry[];
  /** The gateway committed everything through `seq`: forget it. */
  ackThrough(seq: number): void;
  close(): void;
}
