/**
 * What a gateway says about itself: GET /v1/stats answers a GatewayStats, and /metrics, /readyz, the status
 * page at / and `fleetgate status` are all drawn from it.
 */
import type { HistogramSnapshot } from '@fleetgate/core';
import type { CommandCounters } from './commands/command-center.ts';
import type { DeviceLinkStats } from './device-link/device-link-server.ts';
import type { IngressStats } from './ingress/ingress-counters.ts';
import type { PipelineStats, UpstreamStats } from './pipeline/pipeline-protocol.ts';

export type { UpstreamStats } from './pipeline/pipeline-protocol.ts';

/** Data the gateway acknowledged to devices and no backend holds yet: what a lost SD card would cost. */
export interface DataAtRisk {
  /** Payload bytes (and rows) journaled and not yet acknowledged by every upstream they were routed to. */
  unackedBytes: number;
  unackedRows: number;
  /** Age of the oldest such row; null when there is none. */
  oldestUnackedAgeMs: number | null;
  /** Payload bytes per second appended to the journal, and freed from it (acked or dropped), over the last minute. */
  inBytesPerSecond: number;
  outBytesPerSecond: number;
  /** The journal's limit (journal-max-bytes); null without one. */
  limitBytes: number | null;
  /** At the current rates, seconds until the limit is reached; null when the journal is not growing or has no limit. */
  secondsUntilFull: number | null;
  /** What happens at the limit. */
  whenFull: 'drop-oldest' | 'reject-new';
}

export interface GatewayStats {
  gatewayId: string;
  version: string;
  uptimeSeconds: number;
  devicesConnected: number;
  journal: PipelineStats['journal'] & {
    oldestUnackedAgeMs: number | null;
    /** A record's append (MQTT PUBLISH or device-link Data taken) -> durable in the journal, per record. */
    appendDurations: HistogramSnapshot;
  };
  /** In configuration order. */
  upstreams: UpstreamStats[];
  dataAtRisk: DataAtRisk;
  ingress: IngressStats;
  deviceLink: DeviceLinkStats | null;
  commands: CommandCounters & { stored: number };
}
