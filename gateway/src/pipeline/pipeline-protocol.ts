/** Messages between the MQTT thread (pipeline.ts) and the journal thread (pipeline-worker.ts). */
import type { LevelWithSilent } from 'pino';
import type { Durability } from '@fleetgate/common';
import type { GroupCommitSettings, GroupCommitStats } from '../journal/group-commit.ts';
import type { JournalStats } from '../journal/journal.ts';
import type { UplinkSettings, UplinkStats } from '../uplink/uplink.ts';
import type { PackedRecords } from './packed-records.ts';

export interface PipelineSettings {
  gatewayId: string;
  version: string;
  dataDir: string;
  durability: Durability;
  groupCommit: GroupCommitSettings;
  uplink: UplinkSettings;
  logLevel: LevelWithSilent;
}

export interface PipelineStats {
  journal: JournalStats & GroupCommitStats;
  uplink: UplinkStats;
}

export type ToWorker =
  | { type: 'append'; id: number; records: PackedRecords }
  | { type: 'stats'; id: number }
  | { type: 'close'; id: number };

export type FromWorker =
  | { type: 'ready'; lastSeq: number; ackedThrough: number }
  | { type: 'appended'; id: number; error?: string }
  | { type: 'stats'; id: number; stats: PipelineStats }
  | { type: 'closed'; id: number }
  | { type: 'fatal'; error: string };
