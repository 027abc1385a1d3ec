/**
 * What the MQTT thread (pipeline.ts) and the journal thread (journal-thread.ts) say to each other, over the
 * worker RPC (common/src/worker-rpc.ts): the settings the thread starts with, the calls it serves, the events
 * it emits, and the stats it answers.
 */
import type { LogLevel, TlsClientMaterial } from '@fleetgate/common';
import type { Durability } from '@fleetgate/core';
import type { GroupCommitSettings, GroupCommitStats } from '../journal/group-commit.ts';
import type { JournalLimits, JournalStats } from '../journal/journal.ts';
import type { TailCache } from '../journal/tail-cache.ts';
import type { Route } from '../uplink/router.ts';
import type { UplinkSettings } from '../uplink/uplink-settings.ts';
import type { UplinkStats } from '../uplink/uplink-stats.ts';
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

/** The calls the journal thread serves. */
export interface JournalThreadMethods {
  /**
   * Commits the records (packed: one transferred buffer per event-loop turn of the MQTT thread); resolves once
   * they are durable, rejects with JournalFullError when the journal or the disk is full.
   */
  append(records: PackedRecords): Promise<void>;
  /** The highest seq journaled for this device-SDK device in this epoch (0 if none). */
  lastDeviceSeq(deviceId: string, epoch: string): number;
  stats(): PipelineStats;
  /** Frames for the upstream `to` (every upstream if absent); a notification, unanswered. */
  sendUpstream(frames: UplinkFrame[], to?: string): void;
  /** Commits what waits, waits up to graceMs for the batches in flight to be acked, checkpoints, closes. */
  close(graceMs: number): Promise<void>;
}

/** What the journal thread says unasked. */
export interface JournalThreadEvents {
  /** The journal is open and the uplinks started. */
  ready: [{ lastSeq: number; ackedThrough: number }];
  /** A command from the upstream named second (its payload arrives as a plain Uint8Array). */
  command: [Command, string];
  commandAck: [CommandAck, string];
  /** The uplink to this upstream became ready. */
  uplinkReady: [string];
}
