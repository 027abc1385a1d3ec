/**
 * The newest committed records, kept in memory so that an uplink that keeps up sends them without reading
 * them back from SQLite (a read-back cost the journal thread a fifth of its time). A read-through cache in
 * front of the journal, bounded by bytes: when it is full it forgets its oldest records, which are still in
 * the journal, where readAfter finds them. Its seqs are contiguous: every commit is added, in order.
 */
import type { Gap, Journal, JournalRecord, NewRecord } from './journal.ts';
import type { UplinkJournal } from '../uplink/uplink.ts';

/** Rough memory of one cached record beyond its payload (object, strings, array slot). */
const RECORD_OVERHEAD_BYTES = 160;

export class TailCache implements UplinkJournal {
  private records: JournalRecord[] = [];
  /** Index in `records` of the oldest record still cached. */
  private head = 0;
  private bytes = 0;
  private hits = 0;
  private misses = 0;

  constructor(
    private readonly journal: Pick<Journal, 'readAfter' | 'ackedThrough' | 'lastSeq' | 'gaps'>,
    private readonly maxBytes: number,
  ) {}

  get ackedThrough(): number {
    return this.journal.ackedThrough;
  }

  get lastSeq(): number {
    return this.journal.lastSeq;
  }

  gaps(): Gap[] {
    return this.journal.gaps();
  }

  /** Records just committed with seqs firstSeq, firstSeq + 1, ... */
  add(firstSeq: number, records: readonly NewRecord[]): void {
    if (records.length === 0) return;
    if (this.size > 0 && firstSeq !== this.cachedThrough + 1) this.clear(); // not contiguous: start over
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      this.records.push({ seq: firstSeq + i, deviceId: r.deviceId, stream: r.stream, payload: r.payload, contentType: r.contentType, deviceSeq: r.deviceSeq, deviceTimeMs: r.deviceTimeMs, gatewayTimeMs: r.gatewayTimeMs });
      this.bytes += r.payload.length + RECORD_OVERHEAD_BYTES;
    }
    while (this.bytes > this.maxBytes && this.size > 0) this.dropOldest();
    this.compact();
  }

  /** The backend acked through `seq`: those records will not be sent again. */
  release(seq: number): void {
    while (this.size > 0 && this.records[this.head]!.seq <= seq) this.dropOldest();
    this.compact();
  }

  readAfter(afterSeq: number, maxRecords: number, maxBytes: number, throughSeq = Number.MAX_SAFE_INTEGER): JournalRecord[] {
    const first = this.size > 0 ? this.records[this.head]!.seq : Infinity;
    if (afterSeq >= Math.min(this.journal.lastSeq, throughSeq)) return []; // caught up: nothing to read anywhere
    if (afterSeq + 1 < first || afterSeq >= this.cachedThrough) {
      this.misses++;
      return this.journal.readAfter(afterSeq, maxRecords, maxBytes, throughSeq);
    }
    this.hits++;
    const out: JournalRecord[] = [];
    let bytes = 0;
    for (let i = this.head + (afterSeq + 1 - first); i < this.records.length && out.length < maxRecords; i++) {
      const r = this.records[i]!;
      if (r.seq > throughSeq) break;
      if (out.length > 0 && bytes + r.payload.length > maxBytes) break;
      out.push(r);
      bytes += r.payload.length;
    }
    return out;
  }

  stats(): { cachedRecords: number; cachedBytes: number; hits: number; misses: number } {
    return { cachedRecords: this.size, cachedBytes: this.bytes, hits: this.hits, misses: this.misses };
  }

  private get size(): number {
    return this.records.length - this.head;
  }

  /** The last seq held in the cache (-1 when empty). */
  private get cachedThrough(): number {
    return this.size > 0 ? this.records[this.records.length - 1]!.seq : -1;
  }

  private dropOldest(): void {
    this.bytes -= this.records[this.head]!.payload.length + RECORD_OVERHEAD_BYTES;
    this.head++;
  }

  /** Drops the consumed front of the array once it is at least half of it (amortised O(1) per record). */
  private compact(): void {
    if (this.head > 1024 && this.head * 2 >= this.records.length) {
      this.records = this.records.slice(this.head);
      this.head = 0;
    }
  }

  private clear(): void {
    this.records = [];
    this.head = 0;
    this.bytes = 0;
  }
}
