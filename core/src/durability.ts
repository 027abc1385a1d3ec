/**
 * How much a commit survives:
 * - `power`: synchronous=FULL; in WAL mode every commit fsyncs the WAL, so a commit survives power loss.
 * - `process`: synchronous=NORMAL; commits survive a crash of the process (the OS still has them), but the
 *   last ones may be lost on power loss. The database is never corrupted in either mode.
 */
export type Durability = 'power' | 'process';
export const DURABILITIES: readonly Durability[] = ['power', 'process'];
