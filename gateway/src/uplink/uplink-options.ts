/** What an Uplink is made with: its settings, what it reads, and whom it tells what the backend said. */
import type { ChannelCredentials } from '@grpc/grpc-js';
import type { Backoff, Clock, Timers } from '@fleetgate/core';
import type { Logger } from '@fleetgate/common';
import type { Command, CommandAck } from '@fleetgate/protos';
import type { JournalRecord, SeqRange, UpstreamJournal } from '../journal/journal.ts';
import type { UplinkSettings } from './uplink-settings.ts';

export interface UplinkOptions extends UplinkSettings {
  /** The upstream's name (logs); its addresses if absent. */
  name?: string;
  gatewayId: string;
  /** The gateway's version, sent in Hello. */
  version: string;
  /** What the uplink reads: the journal as this upstream sees it, through its tail cache. */
  journal: UpstreamJournal;
  /** The backend committed this range (or took note of this gap): free it. */
  onReleased: (range: SeqRange) => void;
  /** The backend rejected this record `maxAttempts` times: move it out of the way. */
  onDeadLetter?: (record: JournalRecord, reason: string) => void;
  /**
   * Welcome arrived, saying the last seq the backend holds; called before anything is sent in the session, so
   * that a journal that is not the one the backend knows can move its rows above those seqs.
   */
  onWelcome?: (lastCommittedSeq: number) => void;
  logger: Logger;
  backoff?: Backoff;
  timers?: Timers;
  clock?: Clock;
  /** TLS to the backend (grpc-js credentials); plain TCP if absent. */
  credentials?: ChannelCredentials;
  /** Overrides the host name the backend's certificate must carry. */
  serverName?: string;
  /** This gateway's token, asked before every session (so a replaced token file is picked up); throws if none. */
  getToken?: () => string;
  /** A command from the backend. */
  onCommand?: (command: Command) => void;
  /** The backend recorded a command status. */
  onCommandAck?: (ack: CommandAck) => void;
  /** A session became ready: the moment to send what the backend must know (device statuses, results). */
  onReady?: () => void;
}
