/**
 * Dead letters: records the backend rejected as invalid, again and again (the uplink's maxAttempts). Moved out
 * of the journal so that they do not block the stream, and kept, with the backend's reason, beside the journal
 * (its DeadLetterTable) until someone replays or drops them: `fleetgate deadletter list|show|replay|drop --data
 * DIR`. A replay only marks the letter; the gateway re-appends marked letters as new records (new seqs, so the
 * backend does not take them for resends) when it starts and every few seconds while it runs, so that only the
 * gateway ever gives out seqs.
 *
 * With several upstreams a letter remembers which of them refused it (`upstreams`): a record refused by one
 * upstream may have been taken by the others, so its replay goes only to those that refused it. A letter written
 * before upstreams had names, or by a gateway with one upstream, has none and is routed as any new record.
 */
import type { DeadLetter, DeadLetterTable, JournalRecord, NewRecord } from './journal.ts';

export type { DeadLetter } from './journal.ts';

/** A letter to re-append: a new record, for the upstreams that refused it (none named: routed as usual). */
export interface Replay extends NewRecord {
  upstreams: string[];
}

export class DeadLetters {
  constructor(private readonly table: DeadLetterTable) {}

  /**
   * Sets `record` aside (`upstream`: the one that refused it, when there are several). A letter refused again
   * by another upstream keeps its record and its replay mark: that upstream joins its list, its reason and
   * time are the latest.
   */
  add(record: JournalRecord, reason: string, nowMs: number, upstream = ''): void {
    const known = this.table.get(record.seq);
    if (known) {
      const upstreams =
        known.upstreams.length === 0
          ? upstream === ''
            ? []
            : [upstream]
          : upstream === '' || known.upstreams.includes(upstream)
            ? known.upstreams
            : [...known.upstreams, upstream];
      return this.table.put({ ...known, reason, deadAtMs: nowMs, upstreams });
    }
    this.table.put({
      seq: record.seq,
      deviceId: record.deviceId,
      stream: record.stream,
      contentType: record.contentType,
      deviceSeq: record.deviceSeq,
      deviceTimeMs: record.deviceTimeMs,
      gatewayTimeMs: record.gatewayTimeMs,
      payload: record.payload,
      reason,
      deadAtMs: nowMs,
      replay: false,
      upstreams: upstream === '' ? [] : [upstream],
    });
  }

  /** Puts back a letter as it was (salvage of a damaged journal). */
  restore(letter: DeadLetter): void {
    this.table.put(letter);
  }

  list(): DeadLetter[] {
    return this.table.list();
  }

  get(seq: number): DeadLetter | undefined {
    return this.table.get(seq);
  }

  /** Marks a letter to be sent again; false if there is none with this seq. */
  markReplay(seq: number): boolean {
    return this.table.mark(seq);
  }

  drop(seq: number): boolean {
    return this.table.delete(seq);
  }

  /** The letters marked for replay, as new records, and a function that forgets them once they are journaled. */
  takeReplays(nowMs: number): { records: Replay[]; done: () => void } {
    const letters = this.table.marked();
    return {
      records: letters.map((l) => ({
        deviceId: l.deviceId,
        stream: l.stream,
        contentType: l.contentType,
        payload: l.payload,
        deviceSeq: 0,
        deviceEpoch: '',
        deviceTimeMs: l.deviceTimeMs,
        gatewayTimeMs: nowMs,
        upstreams: l.upstreams,
      })),
      done: () => {
        for (const l of letters) this.table.delete(l.seq);
      },
    };
  }
}
