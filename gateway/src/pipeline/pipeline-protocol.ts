/** Messages between the MQTT thread (pipeline.ts) and the journal thread (pipeline-worker.ts). */
import type { LogLevel, TlsClientMaterial } from '@fleetgate/common';
import type { Durability } from '@fleetgate/core';
import type { GroupCommitSettings, GroupCommitStats } from '../journal/group-commit.ts';
import type { JournalLimits, JournalStats } from '../journal/journal.ts';
import type { TailCache } from '../journal/tail-cache.ts';
import type { Route } from '../uplink/router.ts';
import type { UplinkSettings, UplinkStats } from '../uplink/uplink.ts';
import type { PackedRecords } from './packed-records.ts';
import type { Command, CommandAck, UplinkFrame } from '@fleetgate/protos';

export interface PipelineSettings {
  gatewayId: string;
  version: string;
  dataDir: string;
  durability: Durability;
  groupCommit: GroupCommitSettings;
  limits: JournalLimits;
  /** A hard cap on the journal file; past it the journal behaves as on a full disk. */
  maxFileBytes?: number;
  /** Memory for the newest committed records, so the uplink need not read them back from SQLite. */
  tailCacheBytes: number;
  uplink: Omit<UplinkSettings, 'target'>;
  /** Each upstream: its addresses ("host:port,..."), the token file sent to it (re-read at every session), TLS. */
  upstreams: Array<{ name: string; target: string; tokenFile?: string; tls?: TlsClientMaterial & { serverName?: string } }>;
  routes: Route[];
  /** Upstreams no longer configured whose unacknowledged rows may go (see SqliteJournalOptions). */
  forgetUpstreams: string[];
  logLevel: LogLevel;
}

/** One upstream: its uplink's session and counters, and what the journal still holds for it. */
export interface UpstreamStats extends UplinkStats {
  name: string;
  /** Rows routed to this upstream that it has not acknowledged yet, and their payload bytes. */
  pendingRows: number;
  pendingBytes: number;
  /** Age of the oldest of those rows; null when there is none. */
  oldestPendingAgeMs: number | null;
}

export interface PipelineStats {
  journal: JournalStats &
    GroupCommitStats &
    ReturnType<TailCache['stats']> & {
      deadLetters: number;
      /** Set when the journal was found damaged at start and healed. */
      healed?: { damage: string; movedTo: string; salvaged: number; lost: number };
    };
  /** In configuration order. */
  upstreams: UpstreamStats[];
}

export type ToWorker =
  | { type: 'append'; id: number; records: PackedRecords }
  | { type: 'stats'; id: number }
  | { type: 'last-device-seq'; id: number; deviceId: string; epoch: string }
  /** Frames for the upstream `to` (every upstream if absent). */
  | { type: 'upstream'; frames: UplinkFrame[]; to?: string }
  /** Commit what waits, then wait up to graceMs for the batches in flight to be acked, checkpoint, close. */
  | { type: 'close'; id: number; graceMs: number };

export type FromWorker =
  | { type: 'ready'; lastSeq: number; ackedThrough: number }
  /** full: refused because the journal (limit, with reject-new) or the disk was full. */
  | { type: 'appended'; id: number; error?: string; full?: 'limit' | 'disk' }
  | { type: 'stats'; id: number; stats: PipelineStats }
  | { type: 'last-device-seq'; id: number; seq: number }
  | { type: 'command'; command: Command; upstream: string }
  | { type: 'command-ack'; ack: CommandAck; upstream: string }
  | { type: 'uplink-ready'; upstream: string }
  | { type: 'closed'; id: number }
  | { type: 'fatal'; error: string };
