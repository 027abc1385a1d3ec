/**
 * The commit: one SQLite transaction that, in this order, leaves out device-SDK resends (device-seqs.ts),
 * inserts the new rows with their seqs and the `pending` bits of their routes, frees what the upstreams
 * acknowledged (releases.ts), enforces the limits (limits.ts) and writes meta.last_seq and meta.acked_through.
 * It returns what it did; the journal's view in memory moves only once COMMIT returned (journal-sqlite.ts).
 */
import { BulkInsert, type SqliteDatabase } from '@fleetgate/core/sqlite';
import { EVERY_UPSTREAM, type CommitResult, type NewRecord, type Release } from '../journal.ts';
import type { BacklogDelta, Backlogs } from './backlog.ts';
import type { DeviceSeqChanges, DeviceSeqs } from './device-seqs.ts';
import type { Limits } from './limits.ts';
import type { Releases } from './releases.ts';

export interface TxInput {
  records: readonly NewRecord[];
  /** Route masks aligned with `records` (several upstreams), and the stored `pending` of each; else undefined. */
  routes: readonly number[] | undefined;
  pending: readonly number[] | undefined;
  releases: readonly Release[];
  /** The journal before the transaction: its last seq, and the payload bytes it holds. */
  lastSeq: number;
  payloadBytes: number;
}

/** What one transaction did; the bytes are kept out of CommitResult, only the counters need them. */
export interface TxOutcome extends CommitResult {
  storedBytes: number;
  releasedBytes: number;
  droppedRows: number;
  droppedBytes: number;
  ackedThrough: number;
  /** With several upstreams: rows and bytes each upstream stopped (or started) waiting for. */
  backlogDelta: BacklogDelta | undefined;
  /** device_seqs as the transaction left them: applied to the cache only once it committed. */
  deviceSeqs: DeviceSeqChanges;
}

export interface CommitParts {
  deviceSeqs: DeviceSeqs;
  releases: Releases;
  limits: Limits;
  backlogs: Backlogs;
  /** The `pending` of a row with no route: every configured upstream. */
  allBits: number;
}

export class CommitTransaction {
  readonly run: (input: TxInput) => TxOutcome;
  private insertingFrom = 0;
  private insertingPending: readonly number[] | undefined;
  private readonly insert: BulkInsert<NewRecord>;

  constructor(db: SqliteDatabase, parts: CommitParts) {
    const { deviceSeqs, releases, limits, backlogs, allBits } = parts;
    // Row i of a commit gets seq firstSeq + i (the transaction sets insertingFrom first).
    this.insert = new BulkInsert<NewRecord>(
      db,
      'INSERT INTO journal (seq, device_id, stream, device_seq, device_time, gateway_time, content_type, payload, pending)',
      9,
      (r, p, o, i) => {
        p[o] = this.insertingFrom + i;
        p[o + 1] = r.deviceId;
        p[o + 2] = r.stream;
        p[o + 3] = r.deviceSeq;
        p[o + 4] = r.deviceTimeMs;
        p[o + 5] = r.gatewayTimeMs;
        p[o + 6] = r.contentType;
        p[o + 7] = r.payload;
        p[o + 8] = this.insertingPending ? this.insertingPending[i] : allBits;
      },
    );
    const setMeta = db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)');
    const minSeq = db.prepare<[], { seq: number | null }>('SELECT min(seq) AS seq FROM journal');

    this.run = db.transaction((input: TxInput): TxOutcome => {
      const changes: DeviceSeqChanges = new Map();
      const kept = deviceSeqs.keepNew(input.records, changes);
      const pick = <T>(all: readonly T[]) => (kept ? kept.map((i) => all[i]!) : all);
      const stored = pick(input.records);
      const routes = input.routes && pick(input.routes);
      const firstSeq = input.lastSeq + 1;
      const lastSeq = input.lastSeq + stored.length;
      const backlogDelta = backlogs.newDelta();
      this.insertingFrom = firstSeq;
      this.insertingPending = input.pending && pick(input.pending);
      try {
        this.insert.run(stored);
      } finally {
        this.insertingPending = undefined;
      }
      let storedBytes = 0;
      for (const r of stored) storedBytes += r.payload.length;
      if (backlogDelta) {
        stored.forEach((r, k) => {
          const mask = routes ? routes[k]! : EVERY_UPSTREAM;
          for (let i = 0; i < backlogDelta.length; i++) {
            if ((mask & (1 << i)) === 0) continue;
            backlogDelta[i]!.rows++;
            backlogDelta[i]!.bytes += r.payload.length;
          }
        });
      }
      if (stored.length > 0) setMeta.run('last_seq', lastSeq);

      let released = 0;
      let releasedBytes = 0;
      for (const release of input.releases) {
        const freed = releases.free(release, backlogDelta);
        released += freed.rows;
        releasedBytes += freed.bytes;
      }

      const gaps = limits.enforce(input.payloadBytes + storedBytes - releasedBytes, backlogDelta);
      const droppedRows = gaps.reduce((n, g) => n + g.count, 0);
      const droppedBytes = gaps.reduce((n, g) => n + g.bytes, 0);
      const min = minSeq.get()!.seq;
      const ackedThrough = min === null ? lastSeq : min - 1;
      setMeta.run('acked_through', ackedThrough);
      return {
        firstSeq,
        lastSeq,
        stored,
        duplicates: input.records.length - stored.length,
        released,
        gaps: gaps.map(({ from, to, reason, count, timeMs }) => ({ from, to, reason, count, timeMs })),
        ...(routes ? { routes } : {}),
        storedBytes,
        releasedBytes,
        droppedRows,
        droppedBytes,
        ackedThrough,
        deviceSeqs: changes,
        backlogDelta,
      };
    });
  }
}
