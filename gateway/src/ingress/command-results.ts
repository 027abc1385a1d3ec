/**
 * A command result published over MQTT on devices/{id}/command-results/{commandId} (topics.ts): JSON
 * {"status": "succeeded" | "failed" | "rejected", "payload"?: any, "message"?: string}, read into what the command
 * center takes (CommandCenter.fromDevice). Unreadable JSON is refused as invalid-command-result (refusals.ts).
 */
import { CommandStatus, type CommandResult } from '@fleetgate/protos';

/** What CommandCenter.fromDevice takes. */
export type DeviceCommandResult = Pick<CommandResult, 'commandId' | 'status' | 'payload' | 'message'>;

const RESULT_STATUSES: Record<string, CommandStatus> = {
  succeeded: CommandStatus.COMMAND_STATUS_SUCCEEDED,
  failed: CommandStatus.COMMAND_STATUS_FAILED,
  rejected: CommandStatus.COMMAND_STATUS_REJECTED,
};

/** The result in `payload`, or undefined if it is unreadable. */
export function parseCommandResult(commandId: string, payload: Buffer): DeviceCommandResult | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
  const { status, payload: value, message } = (doc ?? {}) as { status?: unknown; payload?: unknown; message?: unknown };
  const known = typeof status === 'string' ? RESULT_STATUSES[status] : undefined;
  if (known === undefined || (message !== undefined && typeof message !== 'string')) return undefined;
  return {
    commandId,
    status: known,
    payload: value === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(value)),
    message: message ?? '',
  };
}
