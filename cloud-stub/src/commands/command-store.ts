/**
 * The backend's commands and where each device is. One interface, one file per implementation
 * (command-store-sqlite.ts).
 */
import { CommandStatus } from '@fleetgate/protos';

/** Where a command is: pending (no gateway has confirmed it yet), then the statuses gateways report. */
export type CommandState = 'pending' | 'queued' | 'delivered' | 'succeeded' | 'failed' | 'expired' | 'rejected';

export const FINAL_STATES: ReadonlySet<CommandState> = new Set(['succeeded', 'failed', 'expired', 'rejected']);

const ORDER: Record<CommandState, number> = {
  pending: 0,
  queued: 1,
  delivered: 2,
  succeeded: 3,
  failed: 3,
  expired: 3,
  rejected: 3,
};

/** States only move forward; a final state never changes. */
export function isForward(from: CommandState, to: CommandState): boolean {
  return !FINAL_STATES.has(from) && ORDER[to] > ORDER[from];
}

/** What an update makes of `current`: moved to `state` with the fields given; undefined when that is not forward. */
export function advanced(current: CloudCommand, state: CommandState, fields: CommandUpdate): CloudCommand | undefined {
  if (!isForward(current.state, state)) return undefined;
  return {
    ...current,
    state,
    result: fields.result ?? current.result,
    message: fields.message ?? current.message,
    gatewayId: fields.gatewayId ?? current.gatewayId,
    updatedAtMs: Date.now(),
  };
}

/** What an update may set besides the state. */
export interface CommandUpdate {
  result?: Buffer;
  message?: string;
  gatewayId?: string;
}

export const STATE_OF_STATUS: Partial<Record<CommandStatus, CommandState>> = {
  [CommandStatus.COMMAND_STATUS_QUEUED]: 'queued',
  [CommandStatus.COMMAND_STATUS_DELIVERED]: 'delivered',
  [CommandStatus.COMMAND_STATUS_SUCCEEDED]: 'succeeded',
  [CommandStatus.COMMAND_STATUS_FAILED]: 'failed',
  [CommandStatus.COMMAND_STATUS_EXPIRED]: 'expired',
  [CommandStatus.COMMAND_STATUS_REJECTED]: 'rejected',
};

export interface CloudCommand {
  commandId: string;
  deviceId: string;
  name: string;
  payload: Buffer;
  state: CommandState;
  /** The device's answer (succeeded). */
  result: Buffer;
  /** Why (failed, rejected, expired). */
  message: string;
  /** The gateway that reported on it last, if any. */
  gatewayId: string | null;
  createdAtMs: number;
  updatedAtMs: number;
  expiresAtMs: number;
}

export interface DeviceLocation {
  gatewayId: string;
  online: boolean;
  protocol: string;
  updatedAtMs: number;
}

export interface NewCommand {
  deviceId: string;
  name: string;
  payload: Buffer;
  expiresAtMs: number;
}

/**
 * Asynchronous, so that replicas can share one store over the network (command-store-jetstream.ts); the
 * SQLite one answers at once.
 */
export interface CloudCommandStore {
  create(command: NewCommand): Promise<CloudCommand>;
  get(commandId: string): Promise<CloudCommand | undefined>;
  /** Moves a command forward (isForward); returns it as it now is, or undefined if unknown. */
  update(commandId: string, state: CommandState, fields: CommandUpdate): Promise<CloudCommand | undefined>;
  /** Not-final, unexpired commands no gateway has confirmed, for `deviceId` (or every device), oldest first. */
  pending(deviceId?: string): Promise<CloudCommand[]>;
  /** Not-final commands past their expiry that no gateway has confirmed (a gateway expires its own). */
  unconfirmedExpired(nowMs: number): Promise<CloudCommand[]>;
  locate(deviceId: string, location: DeviceLocation): Promise<void>;
  location(deviceId: string): Promise<DeviceLocation | undefined>;
  close(): Promise<void>;
}

/**
 * Tells the other replicas of the backend that a command was created, so that the one holding the device's
 * gateway sends it. A single cloud-stub has nobody to tell (LOCAL_BUS).
 */
export interface CommandBus {
  announce(commandId: string): void;
  onAnnounce(handler: (commandId: string) => void): void;
  close(): Promise<void>;
}

export const LOCAL_BUS: CommandBus = { announce: () => {}, onAnnounce: () => {}, close: async () => {} };
