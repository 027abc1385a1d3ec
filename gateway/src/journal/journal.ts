/**
 * The journal: where every message a device sent is kept, durably, from the moment the gateway acknowledges
 * it until the backend has acknowledged it in turn. One interface, one file per implementation
 * (journal-sqlite.ts); every implementation passes the contract suite in test/gateway/journal.contract.ts.
 */
import { FleetgateError } from '@fleetgate/core';

/** The journal cannot take this append: it is full (limit, with reject-new) or the disk is. */
export class JournalFullError extends FleetgateError {
  override name = 'JournalFullError';
  constructor(readonly reason: 'limit' | 'disk') {
    super(
      reason === 'disk'
        ? 'the disk is full: the journal takes nothing until space returns'
        : 'the journal is full (reject-new): try again later',
    );
  }
}

/** A message as ingress hands it over; the journal gives it its seq. */
export interface NewRecord {
  /** From the device's credentials, never from the payload. */
  deviceId: string;
  /** "" for the default stream. */
  stream: string;
  payload: Buffer;
  /** MIME type if known, else "". */
  contentType: string;
  /**
   * The device's own sequence number where its protocol has one (device SDK), else 0. Within one epoch the
   * journal stores each deviceSeq of a device once: a resend is recognised and left out.
   */
  deviceSeq: number;
  /** The device's epoch for deviceSeq (device SDK: random, kept with its outbox), else "". */
  deviceEpoch: string;
  /** When the device says it measured, ms since the epoch; 0 if unknown. */
  deviceTimeMs: number;
  /** When the gateway received it, ms since the epoch. */
  gatewayTimeMs: number;
}

/** A journaled record. The epoch served only to recognise resends at commit: rows do not keep it. */
export interface JournalRecord extends Omit<NewRecord, 'deviceEpoch'> {
  /** Unique for the life of the journal, increasing in append order, never reused. */
  seq: number;
}

/** Seqs from..to, both included. */
export interface SeqRange {
  from: number;
  to: number;
}

/**
 * A range one upstream acknowledged: its rows are freed for that upstream only (`upstream`: its index in the
 * configuration), and go once no upstream they were routed to still waits for them. Without `upstream`, the
 * rows go whoever waits for them (a journal with one upstream, a dead letter everyone gave up on).
 */
export interface Release extends SeqRange {
  upstream?: number;
}

export type GapReason = 'journal-full' | 'too-old' | 'journal-damaged';

/** Records the journal had to let go of without the backend having them: reported upstream, never hidden. */
export interface Gap extends SeqRange {
  reason: GapReason;
  /** Records in the range that were lost (a range may hold seqs that never had a row). */
  count: number;
  timeMs: number;
}

export interface JournalLimits {
  /** Payload bytes held at most; 0: no limit. */
  maxBytes: number;
  /** Records older than this are dropped, with a Gap; 0: no limit. */
  maxAgeMs: number;
  /**
   * When maxBytes is reached: drop-oldest frees the oldest rows (a Gap says which); reject-new leaves the
   * journal as it is and the appender refuses what does not fit (room), so devices keep their data and retry.
   */
  policy: 'drop-oldest' | 'reject-new';
}

/** Upstreams a row can wait for: one bit each of its `pending` column. */
export const MAX_UPSTREAMS = 16;

export const NO_LIMITS: JournalLimits = { maxBytes: 0, maxAgeMs: 0, policy: 'drop-oldest' };

export interface CommitResult {
  /** Seq of the first record appended, or lastSeq + 1 when none was. */
  firstSeq: number;
  /** Seq of the last record appended (the journal's lastSeq after the commit). */
  lastSeq: number;
  /** The records appended, in order, with seqs firstSeq, firstSeq + 1, ...: those given, less the duplicates. */
  stored: readonly NewRecord[];
  /** Records left out: their (deviceId, deviceEpoch, deviceSeq) was already journaled. */
  duplicates: number;
  /** Rows freed by this commit's releases. */
  released: number;
  /** Gaps this commit recorded (drop-oldest, maxAgeMs). */
  gaps: readonly Gap[];
  /**
   * With several upstreams: the upstreams each stored record was routed to (bit i: the i-th configured
   * upstream), aligned with `stored`. Absent: every record goes to every upstream.
   */
  routes?: readonly number[];
}

export interface Journal {
  /**
   * One atomic, durable step: appends `records` in order (giving them consecutive seqs after lastSeq), leaving
   * out those whose device already journaled their deviceSeq in the same epoch; frees the rows (and gaps) in
   * each of `releases` (ranges the backend committed); enforces the limits (dropping with a Gap, never
   * silently). Either all of it is durable when this returns, or it throws and nothing changed.
   */
  commit(records: readonly NewRecord[], releases?: readonly Release[]): CommitResult;

  /** Payload bytes that can still be appended before maxBytes (Infinity without a limit). */
  readonly room: number;

  /**
   * Rows with afterSeq < seq <= throughSeq in seq order: at most `maxRecords`, and no more once `maxBytes` of
   * payload is reached (but always at least one row if there is one, however large).
   */
  readAfter(afterSeq: number, maxRecords: number, maxBytes: number, throughSeq?: number): JournalRecord[];

  /** The highest deviceSeq journaled for this device in this epoch (0 if none, or another epoch). */
  lastDeviceSeq(deviceId: string, epoch: string): number;

  /** Gaps recorded and not yet released by the backend, oldest first. */
  gaps(): Gap[];

  /** Seq of the last row ever appended (0 for a new journal). Survives restarts and the release of every row. */
  readonly lastSeq: number;

  /** Every row through this seq is gone (released or dropped): the low-water mark. 0 for a new journal. */
  readonly ackedThrough: number;

  stats(): JournalStats;

  close(): void;
}

export interface JournalStats {
  /** Rows held: appended and not yet released. */
  rows: number;
  /** Payload bytes of those rows. */
  payloadBytes: number;
  /** Size of the journal's files on disk. */
  fileBytes: number;
  /** gatewayTimeMs of the oldest row held, or null when empty. */
  oldestTimeMs: number | null;
  lastSeq: number;
  ackedThrough: number;
  /** Records dropped since start, by reason, and the gaps not yet released. */
  dropped: Record<GapReason, number>;
  pendingGaps: number;
  /** Payload bytes appended since start, and freed since start (acknowledged by every upstream, or dropped). */
  appendedBytes: number;
  freedBytes: number;
}

/** What the journal holds for one upstream: rows routed to it that it has not acknowledged. */
export interface UpstreamBacklog {
  rows: number;
  payloadBytes: number;
  /** Every row through this seq routed to it has been acknowledged by it (its cursor). */
  ackedThrough: number;
  /** gatewayTimeMs of the oldest such row; null when there is none. */
  oldestTimeMs: number | null;
}
