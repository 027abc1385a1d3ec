/**
 * The backend's commands and where each device is. One interface, one file per implementation
 * (command-store-sqlite.ts).
 */
import { CommandStatus } from '@fleetgate/protos';

/** Where a command is: pending (no gateway has confirmed it yet), then the statuses gateways report. */
export type CommandState = 'pending' | 'queued' | 'delivered' | 'succeeded' | 'failed' | 'expired' | 'rejected';

export const FINAL_STATES: ReadonlySet<CommandState> = new Set(['succeeded', 'failed', 'expired', 'rejected']);

const ORDER: Record<CommandState, number> = { pending: 0, queued: 1, delivered: 2, succeeded: 3, failed: 3, expired: 3, rejected: 3 };

/** States only move forward; a final state never changes. */
export function isForward(from: CommandState, to: CommandState): boolean {
  return !FINAL_STATES.has(from) && ORDER[to] > ORDER[from];
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

export interface CloudCommandStore {
  create(command: NewCommand): CloudCommand;
  get(commandId: string): CloudCommand | undefined;
  /** Moves a command forward (isForward); returns it as it now is, or undefined if unknown. */
  update(commandId: string, state: CommandState, fields: { result?: Buffer; message?: string; gatewayId?: string }): CloudCommand | undefined;
  /** Not-final, unexpired commands no gateway has confirmed, for `deviceId` (or every device), oldest first. */
  pending(deviceId?: string): CloudCommand[];
  /** Not-final commands past their expiry that no gateway has confirmed (a gateway expires its own). */
  unconfirmedExpired(nowMs: number): CloudCommand[];
  locate(deviceId: string, location: DeviceLocation): void;
  location(deviceId: string): DeviceLocation | undefined;
  close(): void;
}
