/**
 * The journal: where every message a device sent is kept, durably, from the moment the gateway acknowledges
 * it until the backend has acknowledged it in turn. This file is the whole contract the runtime uses (the
 * journal thread is typed against it); one folder per implementation (sqlite/, whose journal-sqlite.ts says
 * how it is laid out); every implementation passes the contract suite in test/gateway/journal.contract.ts.
 */

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

/**
 * A route mask (bit i: the i-th configured upstream) that names every upstream, however many are configured:
 * what a record whose upstreams nobody decided goes to.
 */
export const EVERY_UPSTREAM = (1 << MAX_UPSTREAMS) - 1;

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
   * With several upstreams: the routes given to commit() of the records stored, aligned with `stored`. Absent:
   * every record goes to every upstream.
   */
  routes?: readonly number[];
}

/**
 * One upstream's view of the journal: the rows routed to it that it has not acknowledged, in seq order, and
 * the gaps it has still to hear of. What an uplink reads (through its tail cache, which is one too).
 */
export interface UpstreamJournal {
  readAfter(afterSeq: number, maxRecords: number, maxBytes: number, throughSeq?: number): JournalRecord[];
  readonly lastSeq: number;
  /** Every row through this seq routed to this upstream has been acknowledged by it. */
  readonly ackedThrough: number;
  gaps(): Gap[];
}

/** A record the backend rejected too often (dead-letters.ts says what becomes of it), as the journal keeps it. */
export interface DeadLetter {
  seq: number;
  deviceId: string;
  stream: string;
  contentType: string;
  deviceSeq: number;
  deviceTimeMs: number;
  gatewayTimeMs: number;
  payload: Buffer;
  reason: string;
  deadAtMs: number;
  /** Asked to be sent again (by `fleetgate deadletter replay`). */
  replay: boolean;
  /** The upstreams that refused it; empty: the one upstream, or not known. */
  upstreams: string[];
}

/** Where the journal keeps its dead letters, one per seq: all DeadLetters (dead-letters.ts) needs of it. */
export interface DeadLetterTable {
  /** Writes the letter, replacing the one with its seq. */
  put(letter: DeadLetter): void;
  get(seq: number): DeadLetter | undefined;
  /** Every letter, in seq order. */
  list(): DeadLetter[];
  /** The letters marked for replay, in seq order. */
  marked(): DeadLetter[];
  /** Marks a letter for replay; false if there is none with this seq. */
  mark(seq: number): boolean;
  delete(seq: number): boolean;
}

export interface Journal {
  /**
   * One atomic, durable step: appends `records` in order (giving them consecutive seqs after lastSeq), leaving
   * out those whose device already journaled their deviceSeq in the same epoch; frees the rows (and gaps) in
   * each of `releases` (ranges the backend committed); enforces the limits (dropping with a Gap, never
   * silently). Either all of it is durable when this returns, or it throws and nothing changed.
   *
   * `routes`, aligned with `records`: the upstreams each goes to (bit i: the i-th configured upstream; never 0),
   * decided before the commit (uplink/router.ts). The journal stores what it is given; without routes, every
   * record goes to every upstream. With one upstream they are not needed and not kept.
   */
  commit(records: readonly NewRecord[], releases?: readonly Release[], routes?: readonly number[]): CommitResult;

  /** Payload bytes that can still be appended before maxBytes (Infinity without a limit). */
  readonly room: number;

  /**
   * Rows with afterSeq < seq <= throughSeq in seq order: at most `maxRecords`, and no more once `maxBytes` of
   * payload is reached (but always at least one row if there is one, however large). With `upstream` (its
   * index in the configuration), only the rows routed to it that it has not acknowledged.
   */
  readAfter(afterSeq: number, maxRecords: number, maxBytes: number, throughSeq?: number, upstream?: number): JournalRecord[];

  /** Gaps recorded and not yet released by the backend, oldest first; with `upstream`, those it has to hear of. */
  gaps(upstream?: number): Gap[];

  /** The journal as upstream `index` (in configuration order) reads it. */
  upstream(index: number): UpstreamJournal;

  /** What the journal holds for upstream `index`: rows routed to it it has not acknowledged, and its cursor. */
  backlogOf(index: number): UpstreamBacklog;

  /** The highest deviceSeq journaled for this device in this epoch (0 if none, or another epoch). */
  lastDeviceSeq(deviceId: string, epoch: string): number;

  /** Seq of the last row ever appended (0 for a new journal). Survives restarts and the release of every row. */
  readonly lastSeq: number;

  /** Every row through this seq is gone (released or dropped): the low-water mark. 0 for a new journal. */
  readonly ackedThrough: number;

  /** Has a backend ever welcomed this journal? (A fresh one has not: its seqs may clash with an older journal's.) */
  readonly welcomed: boolean;

  /** A backend welcomed this journal; remembered across restarts. */
  markWelcomed(): void;

  /**
   * Renumbering: moves every unacked row and gap above `to`, keeping their order, because the backend already
   * holds seqs up to `to` that this journal did not give out (its data folder was lost, or restored from an old
   * copy). Returns how far they moved (0 if nothing is at or below `to`).
   */
  moveAbove(to: number): number;

  /** Where the journal keeps the records the backend rejected too often. */
  readonly deadLetters: DeadLetterTable;

  /** Housekeeping while idle (called every second or so), such as giving free space back a step at a time. */
  maintain(): void;

  /** Makes what was committed as cheap as it gets to open again (for a clean stop). */
  checkpoint(): void;

  /**
   * Does the journal take writes again after its storage was full? Throws if not (with `code` SQLITE_FULL while
   * the disk is still full).
   */
  probe(): void;

  /**
   * The storage was found short of room at open, or was full since, and no probe has succeeded yet: appends must
   * wait (group commit refuses them) while commits that free rows go on.
   */
  readonly full: boolean;

  /** Where the journal is kept, for logs. */
  readonly location: string;

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
