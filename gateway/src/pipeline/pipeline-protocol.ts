/** Messages between the MQTT thread (pipeline.ts) and the journal thread (pipeline-worker.ts). */
import type { LevelWithSilent } from 'pino';
import type { Durability, TlsClientMaterial } from '@fleetgate/common';
import type { GroupCommitSettings, GroupCommitStats } from '../journal/group-commit.ts';
import type { JournalStats } from '../journal/journal.ts';
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
  /** Memory for the newest committed records, so the uplink need not read them back from SQLite. */
  tailCacheBytes: number;
  uplink: UplinkSettings;
  /** The token file sent to the backend (re-read at every session), and TLS to it. */
  uplinkAuth: { tokenFile?: string; tls?: TlsClientMaterial & { serverName?: string } };
  logLevel: LevelWithSilent;
}

export interface PipelineStats {
  journal: JournalStats & GroupCommitStats & ReturnType<TailCache['stats']>;
  uplink: UplinkStats;
}

export type ToWorker =
  | { type: 'append'; id: number; records: PackedRecords }
  | { type: 'stats'; id: number }
  | { type: 'last-device-seq'; id: number; deviceId: string; epoch: string }
  | { type: 'upstream'; frames: UplinkFrame[] }
  | { type: 'close'; id: number };

export type FromWorker =
  | { type: 'ready'; lastSeq: number; ackedThrough: number }
  | { type: 'appended'; id: number; error?: string }
  | { type: 'stats'; id: number; stats: PipelineStats }
  | { type: 'last-device-seq'; id: number; seq: number }
  | { type: 'command'; command: Command }
  | { type: 'command-ack'; ack: CommandAck }
  | { type: 'uplink-ready' }
  | { type: 'closed'; id: number }
  | { type: 'fatal'; error: string };
