/** The outbox a client is given: one of ours by type (memory by default, or SQLite), or any Outbox of the caller's. */
import { MemoryOutbox } from './outbox-memory.ts';
import { SqliteOutbox, type SqliteOutboxOptions } from './outbox-sqlite.ts';
import { DEFAULT_OUTBOX_LIMITS, type Outbox, type OutboxLimits } from './outbox.ts';

export type OutboxOption = ({ type?: 'memory' } & Partial<OutboxLimits>) | ({ type: 'sqlite' } & SqliteOutboxOptions) | Outbox;

export function openOutbox(option: OutboxOption | undefined): Outbox {
  if (option && 'add' in option) return option;
  if (option?.type === 'sqlite') return new SqliteOutbox(option);
  return new MemoryOutbox({ ...DEFAULT_OUTBOX_LIMITS, ...option });
}
