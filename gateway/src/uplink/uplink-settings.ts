/** What an uplink is told: its limits and timings, their defaults, and the gRPC channel options they make. */

export interface UplinkSettings {
  /** The backend, "host:port". */
  target: string;
  /** At most this many batches unacked at once (and the credit assumed when the backend grants none). */
  window: number;
  maxBatchRecords: number;
  /** Payload bytes per batch (a single larger record still goes, alone). */
  maxBatchBytes: number;
  /** A session that gets no Welcome within this time is given up and retried. */
  welcomeTimeoutMs: number;
  /** Ceiling of the reconnect backoff (exponential from 100 ms, full jitter). */
  reconnectMaxMs: number;
  /**
   * After the backend refused the gateway's credentials (UNAUTHENTICATED, PERMISSION_DENIED: is-retryable.ts),
   * the next attempt waits this long, unless the token (its file) changes first, which is checked at the pace
   * of the reconnect backoff. The same credentials would be refused again: retrying them every few seconds only
   * fills the backend's logs. Never less than reconnectMaxMs.
   */
  refusedRetryMs: number;
  /** Times a record the backend rejects is sent, in all, before it is dead-lettered. */
  maxAttempts: number;
  /**
   * Backlog batches in flight at most. The backend commits batches in the order they come, so live data waits
   * behind every backlog batch sent before it; a few keep the backend busy (its commit is the bottleneck of a
   * replay) without queueing much in front of live data.
   */
  backlogWindow: number;
  /**
   * A stream on which nothing came from the backend for this long is given up as dead; a Heartbeat asks after
   * half of it. Only with a backend that answers heartbeats (Welcome.answers_heartbeats). It must exceed the
   * time one batch takes over the slowest link plus the backend's commit, or a slow link looks dead.
   */
  deadAfterMs: number;
  /** HTTP/2 keepalive ping interval of the channel (KEEPALIVE_TIME_MS; settable for tests that scale time down). */
  keepaliveTimeMs: number;
}

/**
 * HTTP/2 keepalive: grpc-core, grpc-go and grpc-java servers permit a ping every 5 minutes by default
 * (grpc.http2.min_ping_interval_without_data_ms 300000; Go's MinTime, Java's permitKeepAliveTime); 10% more
 * keeps clear of it. Dead-peer detection is the heartbeat's job, this only keeps middleboxes from forgetting an
 * idle connection to a backend that does not answer heartbeats.
 */
export const KEEPALIVE_TIME_MS = 330_000;

/**
 * Enough in flight to cover the round trip (send, backend commit, ack) at ~100k records/s on a busy 2-core
 * machine, where a round trip can take 50 ms or more: 16 batches of up to 1,000 records (at most 16 MiB).
 * A refused gateway tries again after 5 minutes: long enough not to be noise at the backend, short enough
 * that a grant fixed there is picked up without a restart.
 */
export const DEFAULT_UPLINK_SETTINGS: Omit<UplinkSettings, 'target'> = {
  window: 16,
  maxBatchRecords: 1000,
  maxBatchBytes: 1 << 20,
  welcomeTimeoutMs: 10_000,
  reconnectMaxMs: 10_000,
  refusedRetryMs: 300_000,
  maxAttempts: 3,
  backlogWindow: 2,
  deadAfterMs: 20_000,
  keepaliveTimeMs: KEEPALIVE_TIME_MS,
};

/**
 * Keepalive pings only at the rate stock servers permit (see KEEPALIVE_TIME_MS), and only while the stream is
 * open (no permit_without_calls: between sessions a server's limit is 2 hours). Heartbeats find a dead peer.
 */
export function channelOptions(keepaliveTimeMs: number, serverName?: string): Record<string, string | number> {
  return {
    'grpc.keepalive_timeout_ms': 20_000,
    'grpc.keepalive_permit_without_calls': 0,
    // The channel's own reconnect backoff defaults to 1 s growing to 120 s; the session backoff (lifecycle.ts) is
    // the one that matters, so keep the channel's short.
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 5_000,
    'grpc.max_receive_message_length': 16 << 20,
    'grpc.max_send_message_length': 64 << 20,
    'grpc.keepalive_time_ms': keepaliveTimeMs,
    ...(serverName ? { 'grpc.ssl_target_name_override': serverName, 'grpc.default_authority': serverName } : {}),
  };
}
