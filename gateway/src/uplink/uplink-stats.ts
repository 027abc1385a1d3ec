/** What an uplink says about itself (GatewayStats.upstreams, /metrics, the status page, `fleetgate status`). */
import type { ConnectivityState, HistogramSnapshot } from '@fleetgate/core';
import type { AuthRefusal } from './is-retryable.ts';

/** The backend refuses this gateway's credentials: sessions wait long between attempts (lifecycle.ts). */
export interface UplinkRefusal {
  /** The gRPC status it refused with. */
  status: AuthRefusal;
  /** Since when (ms since the epoch) every session was refused. */
  sinceMs: number;
  /** When the next attempt goes (ms since the epoch), unless the token changes before. */
  retryAtMs: number;
}

export interface UplinkStats {
  state: ConnectivityState;
  /** The configured upstream(s), comma-separated. */
  target: string;
  /** The upstream of the current (or last) session. */
  connectedTo: string;
  /** Every row through this seq is acked or gone (the journal's low-water mark). */
  ackedThrough: number;
  /** Highest seq sent in the current session (either lane). */
  sentThrough: number;
  lanes: { liveFrom: number; liveSentThrough: number; backlogSentThrough: number; backlogRemaining: boolean };
  credit: number;
  batchesInFlight: number;
  batchesSent: number;
  recordsSent: number;
  /** Records sent again after a reconnect (already sent once, not acked then). */
  recordsResent: number;
  acks: number;
  gapsSent: number;
  rejections: number;
  deadLettered: number;
  /** Times the stream would take no more (write() returned false) and the sender waited for 'drain'. */
  drainWaits: number;
  /** Heartbeats sent (to a backend that answers them) and answers received. */
  heartbeatsSent: number;
  heartbeatsAnswered: number;
  /** Sessions started (connection attempts). */
  sessions: number;
  failures: number;
  lastError: string | null;
  /** Set while the backend refuses this gateway's credentials; null otherwise. */
  refused: UplinkRefusal | null;
  /** Batch written -> its Ack, per batch (the network both ways and the backend's commit). */
  ackDurations: HistogramSnapshot;
  /**
   * A record's arrival at the gateway -> the Ack that settled it, per record: the whole path, journal, waits for
   * credit and backlog included (a record resent after an outage counts its whole age).
   */
  deliveryDurations: HistogramSnapshot;
}

/** The counters of UplinkStats, kept for the life of the uplink. */
export type UplinkCounters = Pick<
  UplinkStats,
  | 'batchesSent'
  | 'recordsSent'
  | 'recordsResent'
  | 'acks'
  | 'gapsSent'
  | 'rejections'
  | 'deadLettered'
  | 'drainWaits'
  | 'heartbeatsSent'
  | 'heartbeatsAnswered'
  | 'sessions'
  | 'failures'
>;

export function newCounters(): UplinkCounters {
  return {
    batchesSent: 0,
    recordsSent: 0,
    recordsResent: 0,
    acks: 0,
    gapsSent: 0,
    rejections: 0,
    deadLettered: 0,
    drainWaits: 0,
    heartbeatsSent: 0,
    heartbeatsAnswered: 0,
    sessions: 0,
    failures: 0,
  };
}
