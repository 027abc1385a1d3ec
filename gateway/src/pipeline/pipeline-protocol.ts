/** Messages between the MQTT thread (pipeline.ts) and the journal thread (pipeline-worker.ts). */
import type { LevelWithSilent } from 'pino';
import type { Durability, TlsClientMaterial } from '@fleetgate/common';
import type { GroupCommitSettings, GroupCommitStats } from '../journal/group-commit.ts';
import type { JournalLimits, JournalStats } from '../journal/journal.ts';
import type { TailCache } from '../journal/tail-cache.ts';
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
  uplink: UplinkSettings;
  /** The token file sent to the backend (re-read at every session), and TLS to it. */
  uplinkAuth: { tokenFile?: string; tls?: TlsClientMaterial & { serverName?: string } };
  logLevel: LevelWithSilent;
}

export interface PipelineStats {
  journal: JournalStats & GroupCommitStats & ReturnType<TailCache['stats']> & {
    deadLetters: number;
    /** Set when the journal was found damaged at start and healed. */
    healed?: { damage: string; movedTo: string; salvaged: number; lost: number };
  };
  uplink: UplinkStats;
}

export type ToWorker =
  | { type: 'append'; id: number; records: PackedRecords }
  | { type: 'stats'; id: number }
  | { type: 'last-device-seq'; id: number; deviceId: string; epoch: string }
  | { type: 'upstream'; frames: UplinkFrame[] }
  /** Commit what waits, then wait up to graceMs for the batches in flight to be acked, checkpoint, close. */
  | { type: 'close'; id: number; graceMs: number };

export type FromWorker =
  | { type: 'ready'; lastSeq: number; ackedThrough: number }
  /** full: refused because the journal (limit, with reject-new) or the disk was full. */
  | { type: 'appended'; id: number; error?: string; full?: 'limit' | 'disk' }
  | { type: 'stats'; id: number; stats: PipelineStats }
  | { type: 'last-device-seq'; id: number; seq: number }
  | { type: 'command'; command: Command }
  | { type: 'command-ack'; ack: CommandAck }
  | { type: 'uplink-ready' }
  | { type: 'closed'; id: number }
  | { type: 'fatal'; error: string };
