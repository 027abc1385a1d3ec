/** A hand-made GatewayStats for the tests of what is drawn from it (status page, `fleetgate status`, /metrics): two upstreams, one of them failing. */
import { ConnectivityState } from '@fleetgate/core';
import { DEVICE_LINK_REFUSALS } from '../../gateway/src/device-link/device-session.ts';
import { REFUSAL_REASONS } from '../../gateway/src/ingress/mqtt-ingress.ts';
import type { GatewayStats, UpstreamStats } from '../../gateway/src/stats.ts';

export const HOSTILE = '</script><img src=x onerror=alert(1)>';

const zeros = <K extends string>(keys: readonly K[]) => Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;

export function upstream(name: string, overrides: Partial<UpstreamStats> = {}): UpstreamStats {
  return {
    name,
    state: ConnectivityState.READY,
    target: '10.0.0.5:50051',
    connectedTo: '10.0.0.5:50051',
    ackedThrough: 1000,
    sentThrough: 1010,
    lanes: { liveFrom: 900, liveSentThrough: 1010, backlogSentThrough: 899, backlogRemaining: false },
    credit: 14,
    batchesInFlight: 2,
    batchesSent: 120,
    recordsSent: 1010,
    recordsResent: 3,
    acks: 118,
    gapsSent: 0,
    rejections: 0,
    deadLettered: 0,
    drainWaits: 0,
    heartbeatsSent: 0,
    heartbeatsAnswered: 0,
    sessions: 1,
    failures: 0,
    lastError: null,
    refused: null,
    pendingRows: 10,
    pendingBytes: 1_000,
    oldestPendingAgeMs: 350,
    ...overrides,
  };
}

export function gatewayStats(): GatewayStats {
  return {
    gatewayId: 'gw-berlin-7',
    version: '0.1.0',
    uptimeSeconds: 3 * 3600 + 12 * 60,
    devicesConnected: 12,
    journal: {
      rows: 4321,
      payloadBytes: 1_250_000,
      fileBytes: 4_096_000,
      oldestTimeMs: Date.now() - 95_000,
      oldestUnackedAgeMs: 95_000,
      lastSeq: 5000,
      ackedThrough: 679,
      dropped: { 'journal-full': 0, 'too-old': 0, 'journal-damaged': 0 },
      pendingGaps: 0,
      appendedBytes: 5_000_000,
      freedBytes: 3_750_000,
      commits: 900,
      committedRows: 5000,
      failedCommits: 0,
      rejectedAppends: 0,
      diskFull: false,
      waiting: 0,
      lastCommitMs: 1,
      commitDurations: { boundsMs: [1, 10], counts: [5, 0, 0], sumMs: 3, count: 5 },
      cachedRecords: 100,
      cachedBytes: 10_000,
      hits: 10,
      misses: 0,
      deadLetters: 0,
    },
    upstreams: [
      upstream('primary'),
      upstream('archive', {
        state: ConnectivityState.TRANSIENT_FAILURE,
        target: '10.0.9.9:50051',
        connectedTo: '10.0.9.9:50051',
        ackedThrough: 679,
        recordsSent: 700,
        batchesInFlight: 0,
        pendingRows: 4321,
        pendingBytes: 1_250_000,
        oldestPendingAgeMs: 95_000,
        failures: 7,
        lastError: '14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED 10.0.9.9:50051',
      }),
    ],
    dataAtRisk: {
      unackedBytes: 1_250_000,
      unackedRows: 4321,
      oldestUnackedAgeMs: 95_000,
      inBytesPerSecond: 12_000,
      outBytesPerSecond: 2_000,
      limitBytes: 2_000_000_000,
      secondsUntilFull: 199_875,
      whenFull: 'drop-oldest',
    },
    ingress: {
      listeners: { mqtt: '0.0.0.0:1883' },
      auth: 'token',
      devicesConnected: 10,
      messages: 5000,
      bytes: 500_000,
      qos0: 0,
      qos1: 5000,
      qos2: 0,
      localMessages: 0,
      refusals: zeros(REFUSAL_REASONS),
      disconnects: { 'token-expired': 0, 'token-revoked': 0, 'taken-over': 0 },
      clientErrors: 0,
      heldForBackpressure: 0,
      rateLimited: 0,
    },
    deviceLink: {
      listen: '0.0.0.0:50052',
      tls: false,
      devicesConnected: 2,
      messages: 800,
      bytes: 80_000,
      resent: 0,
      refusals: zeros(DEVICE_LINK_REFUSALS),
      disconnects: { 'token-expired': 0, 'token-revoked': 0, 'taken-over': 0 },
    },
    commands: { received: 6, delivered: 5, succeeded: 3, failed: 1, expired: 1, rejected: 0, unknownResults: 0, stored: 1 },
  };
}
