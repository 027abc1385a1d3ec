/**
 * The gateway's commands: kept from the moment the backend sends one until the backend has confirmed its final
 * status (succeeded, failed, expired, rejected). One interface, one file per implementation
 * (command-store-sqlite.ts).
 */
import { CommandStatus, type Command } from '@fleetgate/protos';

export interface StoredCommand {
  commandId: string;
  deviceId: string;
  name: string;
  payload: Buffer;
  expiresAtMs: number;
  status: CommandStatus;
  /** The device's answer (SUCCEEDED). */
  resultPayload: Buffer;
  /** Why (FAILED, REJECTED, EXPIRED). */
  message: string;
  /** The last status the backend confirmed (UNSPECIFIED: none yet). */
  reportedStatus: CommandStatus;
  /** The upstream that sent it, which hears of its statuses ("": any, from before upstreams had names). */
  origin: string;
}

export const FINAL_STATUSES: ReadonlySet<CommandStatus> = new Set([
  CommandStatus.COMMAND_STATUS_SUCCEEDED,
  CommandStatus.COMMAND_STATUS_FAILED,
  CommandStatus.COMMAND_STATUS_EXPIRED,
  CommandStatus.COMMAND_STATUS_REJECTED,
]);

/** Statuses only move forward: queued, then delivered, then one final status; a final status never changes. */
export function isAdvance(from: CommandStatus, to: CommandStatus): boolean {
  if (FINAL_STATUSES.has(from)) return false;
  if (FINAL_STATUSES.has(to)) return true;
  return to > from;
}

export interface CommandStore {
  /** Keeps a command the backend (the upstream `origin`) sent (QUEUED); the same command id again returns what is kept. */
  add(command: Command, origin: string): StoredCommand;
  get(commandId: string): StoredCommand | undefined;
  /** Moves a command to `status` if that is forward (isAdvance); returns it as it now is, or undefined if unknown. */
  advance(commandId: string, status: CommandStatus, result?: { payload?: Buffer; message?: string }): StoredCommand | undefined;
  /** Commands of a device still to deliver or answer, oldest first. */
  pendingFor(deviceId: string): StoredCommand[];
  /** Commands whose status the backend has not confirmed yet. */
  unreported(): StoredCommand[];
  /** The backend confirmed `status`; a confirmed final status lets the command go. */
  confirmed(commandId: string, status: CommandStatus): void;
  /** Not-final commands past their expiry at `nowMs`. */
  expiredAt(nowMs: number): StoredCommand[];
  /** The earliest expiry among not-final commands. */
  nextExpiryMs(): number | undefined;
  readonly size: number;
  close(): void;
}
