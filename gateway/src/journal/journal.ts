/**
 * The journal: where every message a device sent is kept, durably, from the moment the gateway acknowledges
 * it until the backend has acknowledged it in turn. One interface, one file per implementation
 * (journal-sqlite.ts); every implementation passes the contract suite in test/gateway/journal.contract.ts.
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

export interface CommitResult {
  /** Seq of the first record appended, or lastSeq + 1 when none was. */
  firstSeq: number;
  /** Seq of the last record appended (the journal's lastSeq after the commit). */
  lastSeq: number;
  /** The records appended, in order, with seqs firstSeq, firstSeq + 1, ...: those given, less the duplicates. */
  stored: readonly NewRecord[];
  /** Records left out: their (deviceId, deviceEpoch, deviceSeq) was already journaled. */
  duplicates: number;
  /** Rows freed by this commit's release. */
  released: number;
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
}

export interface Journal {
  /**
   * One atomic, durable step: appends `records` in order (giving them consecutive seqs after lastSeq), leaving
   * out those whose device already journaled their deviceSeq in the same epoch, and, if `ackedThrough` is
   * beyond the current one, frees every row with seq <= ackedThrough. Either all of it is durable when this
   * returns, or it throws and nothing changed.
   */
  commit(records: readonly NewRecord[], ackedThrough?: number): CommitResult;

  /** The highest deviceSeq journaled for this device in this epoch (0 if none, or another epoch). */
  lastDeviceSeq(deviceId: string, epoch: string): number;

  /**
   * Rows with seq > afterSeq in seq order: at most `maxRecords`, and no more once `maxBytes` of payload is
   * reached (but always at least one row if there is one, however large).
   */
  readAfter(afterSeq: number, maxRecords: number, maxBytes: number): JournalRecord[];

  /** Seq of the last row ever appended (0 for a new journal). Survives restarts and the release of every row. */
  readonly lastSeq: number;

  /** Every row through this seq has been released (0 for a new journal). */
  readonly ackedThrough: number;

  stats(): JournalStats;

  close(): void;
}
