/**
 * Where the cloud-stub keeps what gateways sent. One interface, one file per implementation (sink-sqlite.ts).
 * A sink commits durably and dedupes by (gatewayId, seq): the uplink is at-least-once on the wire, the sink
 * makes it exactly-once in storage.
 */

/** A record as it arrived in a TelemetryBatch. */
export interface SinkRecord {
  seq: number;
  deviceId: string;
  stream: string;
  deviceSeq: number;
  deviceTimeMs: number;
  gatewayTimeMs: number;
  payload: Uint8Array;
  contentType: string;
}

export interface SinkBatch {
  gatewayId: string;
  records: readonly SinkRecord[];
}

/** What one batch changed: records stored, and records skipped because the sink already held them. */
export interface SinkOutcome {
  inserted: number;
  duplicates: number;
}

export interface GatewayStats {
  /** Highest seq held for this gateway. */
  lastSeq: number;
  records: number;
  duplicates: number;
}

export interface SinkStats {
  records: number;
  duplicates: number;
  /** Gaps gateways reported, and the records they say were lost in them. */
  gaps: number;
  recordsLostInGaps: number;
  gateways: Record<string, GatewayStats>;
  /** Records held per device id. */
  devices: Record<string, number>;
}

/** Records a gateway reported it had to let go of before this backend had them (a Gap frame). */
export interface SinkGap {
  fromSeq: number;
  toSeq: number;
  reason: string;
  count: number;
  timeMs: number;
}

/** A gap, as `fleetgate cloud export --gaps` prints it. */
export interface ExportedGap {
  gatewayId: string;
  fromSeq: number;
  toSeq: number;
  reason: string;
  count: number;
  time: number;
  receivedTime: number;
}

/** One committed record, as `fleetgate cloud export` prints it (one JSON object per line). */
export interface ExportedRecord {
  gatewayId: string;
  seq: number;
  deviceId: string;
  stream: string;
  /** Base64. */
  payload: string;
  contentType: string;
  deviceSeq: number;
  /** Milliseconds since the epoch: device's own time (0 = unknown), gateway receipt, backend commit. */
  deviceTime: number;
  gatewayTime: number;
  receivedTime: number;
}

export interface Sink {
  /**
   * Commits every batch in one durable step and resolves with each batch's outcome, in order. Records whose
   * (gatewayId, seq) the sink already holds are skipped and counted as duplicates. Resolves only once the
   * commit is durable; rejects when the commit failed (SQLite: nothing stored; JetStream: part of it may be,
   * and comes back as duplicates on the resend).
   */
  commit(batches: readonly SinkBatch[]): Promise<SinkOutcome[]>;
  /** Records a gap a gateway reported (a repeat of the same gap is ignored). */
  recordGap(gatewayId: string, gap: SinkGap): Promise<void>;
  /** Highest seq held for the gateway, 0 if none. */
  lastSeq(gatewayId: string): Promise<number>;
  stats(): Promise<SinkStats>;
  /** Every record in commit order. */
  exportRecords(): AsyncIterable<ExportedRecord>;
  /** Every gap gateways reported, in the order received. */
  exportGaps(): Promise<ExportedGap[]>;
  close(): Promise<void>;
}
