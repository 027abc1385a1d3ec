/**
 * Commands from the gateway, run on the device: the handler registered for the command's name runs, and its value
 * (or its error's message) is the result. A command without a handler is REJECTED, one past its expiry EXPIRED
 * without running. A command delivered again (after a reconnect, the gateway resends what it has no result for)
 * gets the result it had, not a second run: the last HANDLED_COMMANDS_REMEMBERED results are kept.
 */
import { errorMessage } from '@fleetgate/core';
import { CommandStatus, type Command, type CommandResult } from '@fleetgate/protos';
import { encodePayload } from './payload.ts';

export interface CommandRequest {
  commandId: string;
  name: string;
  payload: Buffer;
  expiresAt: Date;
  /** The payload parsed as JSON. */
  json<T = unknown>(): T;
}

/** Returns the result (a Buffer, a string, or anything JSON); throws to fail the command with its message. */
export type CommandHandler = (command: CommandRequest) => unknown;

const HANDLED_COMMANDS_REMEMBERED = 1000;

export class CommandRunner {
  private readonly handlers = new Map<string, CommandHandler>();
  /** Results of commands already run: a command delivered again gets the same answer, not a second run. */
  private readonly handled = new Map<string, CommandResult>();

  on(name: string, handler: CommandHandler): void {
    this.handlers.set(name, handler);
  }

  /** Runs `command` (or recalls its result) and passes the result to `reply`; at once when no handler runs. */
  async run(command: Command, reply: (result: CommandResult) => void): Promise<void> {
    const answer = (result: CommandResult) => {
      this.handled.set(command.commandId, result);
      if (this.handled.size > HANDLED_COMMANDS_REMEMBERED) this.handled.delete(this.handled.keys().next().value!);
      reply(result);
    };
    const base = { commandId: command.commandId, deviceId: command.deviceId, payload: Buffer.alloc(0), message: '' };
    const earlier = this.handled.get(command.commandId);
    if (earlier) return answer(earlier);
    const handler = this.handlers.get(command.name);
    if (!handler)
      return answer({
        ...base,
        status: CommandStatus.COMMAND_STATUS_REJECTED,
        message: `no handler for command "${command.name}"`,
      });
    if (command.expiresAtMs > 0 && command.expiresAtMs <= Date.now()) {
      return answer({ ...base, status: CommandStatus.COMMAND_STATUS_EXPIRED, message: 'expired before it could run' });
    }
    const request: CommandRequest = {
      commandId: command.commandId,
      name: command.name,
      payload: command.payload,
      expiresAt: new Date(command.expiresAtMs),
      json: <T>() => JSON.parse(command.payload.toString('utf8')) as T,
    };
    try {
      const value = await handler(request);
      answer({
        ...base,
        status: CommandStatus.COMMAND_STATUS_SUCCEEDED,
        payload: value === undefined ? Buffer.alloc(0) : encodePayload(value).bytes,
      });
    } catch (err: unknown) {
      answer({ ...base, status: CommandStatus.COMMAND_STATUS_FAILED, message: errorMessage(err) });
    }
  }
}
