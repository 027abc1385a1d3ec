/**
 * What one simulator run produced: the timeline sampled while it ran, the faults it injected, and the
 * verification of what arrived at the cloud-stub. `fleetgate sim --json` writes it; the HTML report draws it.
 */

export interface LatencySummary {
  /** Milliseconds, device send time to commit at the cloud-stub. */
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  /** Records the figures are taken from. */
  count: number;
}

/** One sample of the live counters, taken every `sampleMs` while the run goes on. */
export interface TimelineSample {
  /** Seconds since the run started. */
  t: number;
  /** Totals so far over the fleet. */
  sent: number;
  acked: number;
  /** Records of this fleet committed at the cloud-stub (null when the cloud-stub could not be asked). */
  committed: number | null;
  /** Per second, over the last interval. */
  sentRate: number;
  ackedRate: number;
  committedRate: number | null;
  /** Rows in the gateway's journal not yet acked by the backend (null when the gateway could not be asked). */
  backlog: number | null;
  /** Devices connected at the moment of the sample. */
  connected: number;
}

/** Latency of the records committed at the cloud within one second of the run (from the verification). */
export interface LatencySample {
  /** Seconds since the run started (start of the 1 s bucket, by cloud commit time). */
  t: number;
  p50: number;
  p99: number;
  max: number;
  count: number;
}

export interface FaultMarker {
  /** Seconds since the run started. */
  t: number;
  /** e.g. kill-gateway, restart-cloud, expire-tokens, reconnect-storm. */
  kind: string;
  detail: string;
}

export interface PhaseMarker {
  name: string;
  /** Seconds since the run started. */
  from: number;
  to: number;
}

export interface DeviceVerification {
  deviceId: string;
  protocol: 'mqtt' | 'sdk';
  sent: number;
  acked: number;
  /** Distinct messages of this device found at the cloud. */
  arrived: number;
  /** Acked messages that never arrived: the failure the simulator exists to find. */
  lost: number;
  /** Extra copies not explained by a connection drop while the message was in flight. */
  duplicates: number;
  /** Extra copies of messages that were in flight at a connection drop (QoS 1 allows these). */
  redelivered: number;
  /** Messages that arrived (first copies, in gateway seq order) behind a later message of the same device. */
  outOfOrder: number;
}

export interface Verification {
  devices: number;
  sent: number;
  acked: number;
  arrived: number;
  lost: number;
  duplicates: number;
  redelivered: number;
  outOfOrder: number;
  /** Records of sent but never acked messages that did not arrive (QoS 0, or in flight at the end): not a failure. */
  unackedMissing: number;
  /** What the gateway declared lost (journal limits, damage), from the Gaps the cloud-stub recorded. */
  gaps: { ranges: number; records: number; byReason: Record<string, number> };
  /** Up to 20 examples per kind, as "deviceId#n". */
  examples: { lost: string[]; duplicates: string[]; outOfOrder: string[] };
  perDevice: DeviceVerification[];
  /** No acked message lost, no unexplained duplicate, nothing out of order. */
  ok: boolean;
}

export interface SimResult {
  name: string;
  /** Milliseconds since the epoch. */
  startedAt: number;
  endedAt: number;
  /** The settings the run used, as given (for the report's header). */
  settings: Record<string, unknown>;
  sampleMs: number;
  timeline: TimelineSample[];
  latencyOverTime: LatencySample[];
  phases: PhaseMarker[];
  faults: FaultMarker[];
  latency: LatencySummary;
  verification: Verification;
}
