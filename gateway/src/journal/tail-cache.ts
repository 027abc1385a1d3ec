/**
 * The newest committed records, kept in memory so that an uplink that keeps up sends them without reading
 * them back from SQLite (a read-back cost the journal thread a fifth of its time). A read-through cache in
 * front of the journal, bounded by bytes: when it is full it forgets its oldest records, which are still in
 * the journal, where readAfter finds them. Its slots are contiguous seqs: every commit is added, in order.
 * Records the journal lets go of (acked ranges, dead letters, drops) are forgotten here too, so nothing is
 * read from memory that the journal no longer holds. With several upstreams each has a cache of its own, which
 * keeps only the records routed to it (the others leave their slot empty).
 */
import type { Gap, JournalRecord, NewRecord, SeqRange, UpstreamJournal } from './journal.ts';

/** Rough memory of one cached record beyond its payload (object, strings, array slot). */
const RECORD_OVERHEAD_BYTES = 160;

export class TailCache implements UpstreamJournal {
  /** Slot i holds seq base + i; a forgotten record leaves its slot undefined. */
  private records: Array<JournalRecord | undefined> = [];
  private base = 0;
  /** Index of the oldest slot still cached (never an undefined one). */
  private head = 0;
  private bytes = 0;
  /** Records held (slots that are not forgotten). */
  private held = 0;
  private hits = 0;
  private misses = 0;

  constructor(
    /** The journal as the upstream this cache serves reads it (Journal.upstream). */
    private readonly journal: UpstreamJournal,
    private readonly maxBytes: number,
    /** The upstream (its index) this cache serves, when records are routed (CommitResult.routes). */
    private readonly upstream?: number,
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

  /** Records just committed with seqs firstSeq, firstSeq + 1, ...; `routes` as in CommitResult. */
  add(firstSeq: number, records: readonly NewRecord[], routes?: readonly number[]): void {
    if (records.length === 0) return;
    if (this.size > 0 && firstSeq !== this.cachedThrough + 1) this.clear(); // not contiguous: start over
    if (this.size === 0) {
      this.clear();
      this.base = firstSeq;
    }
    const bit = routes && this.upstream !== undefined ? 1 << this.upstream : 0;
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      if (bit !== 0 && (routes![i]! & bit) === 0) {
        this.records.push(undefined);
        continue;
      }
      this.held++;
      this.records.push({
        seq: firstSeq + i,
        deviceId: r.deviceId,
        stream: r.stream,
        payload: r.payload,
        contentType: r.contentType,
        deviceSeq: r.deviceSeq,
        deviceTimeMs: r.deviceTimeMs,
        gatewayTimeMs: r.gatewayTimeMs,
      });
      this.bytes += r.payload.length + RECORD_OVERHEAD_BYTES;
    }
    this.skipForgotten();
    while (this.bytes > this.maxBytes && this.size > 0) this.dropOldest();
    this.compact();
  }

  /** Everything through `seq` is gone from the journal (its low-water mark): forgets it. */
  release(seq: number): void {
    while (this.size > 0 && this.base + this.head <= seq) this.dropOldest();
    this.compact();
  }

  /** The journal let go of `range` (acked, dead-lettered, dropped): those records are not to be read again. */
  forget({ from, to }: SeqRange): void {
    if (this.size === 0) return;
    const last = Math.min(to, this.cachedThrough);
    for (let seq = Math.max(from, this.base + this.head); seq <= last; seq++) {
      const i = seq - this.base;
      const r = this.records[i];
      if (r) {
        this.bytes -= r.payload.length + RECORD_OVERHEAD_BYTES;
        this.held--;
        this.records[i] = undefined;
      }
    }
    this.skipForgotten();
    this.compact();
  }

  readAfter(afterSeq: number, maxRecords: number, maxBytes: number, throughSeq = Number.MAX_SAFE_INTEGER): JournalRecord[] {
    if (afterSeq >= Math.min(this.journal.lastSeq, throughSeq)) return []; // caught up: nothing to read anywhere
    const first = this.size > 0 ? this.base + this.head : Infinity;
    if (afterSeq + 1 < first || afterSeq >= this.cachedThrough) {
      this.misses++;
      return this.journal.readAfter(afterSeq, maxRecords, maxBytes, throughSeq);
    }
    this.hits++;
    const out: JournalRecord[] = [];
    let bytes = 0;
    const end = Math.min(this.records.length, throughSeq - this.base + 1);
    for (let i = afterSeq + 1 - this.base; i < end && out.length < maxRecords; i++) {
      const r = this.records[i];
      if (r === undefined) continue;
      if (out.length > 0 && bytes + r.payload.length > maxBytes) break;
      out.push(r);
      bytes += r.payload.length;
    }
    return out;
  }

  stats(): { cachedRecords: number; cachedBytes: number; hits: number; misses: number } {
    return { cachedRecords: this.held, cachedBytes: this.bytes, hits: this.hits, misses: this.misses };
  }

  /** Slots from the oldest cached one to the newest (forgotten ones included). */
  private get size(): number {
    return this.records.length - this.head;
  }

  /** The last seq the cache covers (-1 when empty). */
  private get cachedThrough(): number {
    return this.size > 0 ? this.base + this.records.length - 1 : -1;
  }

  private dropOldest(): void {
    const r = this.records[this.head];
    if (r) {
      this.bytes -= r.payload.length + RECORD_OVERHEAD_BYTES;
      this.held--;
    }
    this.head++;
    this.skipForgotten();
  }

  private skipForgotten(): void {
    while (this.head < this.records.length && this.records[this.head] === undefined) this.head++;
  }

  /** Drops the consumed front of the array once it is at least half of it (amortised O(1) per record). */
  private compact(): void {
    if (this.size === 0) return this.clear();
    if (this.head > 1024 && this.head * 2 >= this.records.length) {
      this.records = this.records.slice(this.head);
      this.base += this.head;
      this.head = 0;
    }
  }

  /** Forgets everything (the journal renumbered its rows). */
  clear(): void {
    this.records = [];
    this.base = 0;
    this.head = 0;
    this.bytes = 0;
    this.held = 0;
  }
}
