/**
 * Commands at the gateway, from the backend to a device and back:
 *
 *   backend Command -> store (QUEUED, reported up) -> device online? deliver (DELIVERED) -> device answers
 *   (SUCCEEDED / FAILED / REJECTED) -> reported up -> backend CommandAck -> forgotten
 *   not answered by expires_at -> EXPIRED, reported up
 *
 * Every status is kept until the backend confirms it, and everything unconfirmed is sent again each time the
 * uplink becomes ready, with the status of every connected device (so the backend knows where each one is).
 * With several upstreams, a command's statuses go to the upstream that sent it, and only its confirmation
 * counts; device statuses go to every upstream.
 * A device gets its pending commands each time it connects; it recognises a command it already ran by its id.
 */
import {
  type Clock,
  DEVICE_ID_PATTERN,
  ID_PATTERN,
  systemClock,
  systemTimers,
  type TimerHandle,
  type Timers,
} from '@fleetgate/core';
import type { Logger } from '@fleetgate/common';
import { CommandStatus, type Command, type CommandAck, type CommandResult, type UplinkFrame } from '@fleetgate/protos';
import { FINAL_STATUSES, type CommandStore, type StoredCommand } from './command-store.ts';
import type { DeviceProtocol, DeviceRegistry } from './device-registry.ts';

export interface Upstream {
  /**
   * Sends frames to the upstream named `to` (every upstream if absent) if its uplink is ready; drops them
   * otherwise (what matters is sent again when it becomes ready).
   */
  send(frames: UplinkFrame[], to?: string): void;
}

export interface CommandCenterOptions {
  store: CommandStore;
  registry: DeviceRegistry;
  upstream: Upstream;
  logger: Logger;
  clock?: Clock;
  timers?: Timers;
}

export type CommandCounters = Record<
  'received' | 'delivered' | 'succeeded' | 'failed' | 'expired' | 'rejected' | 'unknownResults',
  number
>;

const STATUS_COUNTER: Partial<Record<CommandStatus, keyof CommandCounters>> = {
  [CommandStatus.COMMAND_STATUS_DELIVERED]: 'delivered',
  [CommandStatus.COMMAND_STATUS_SUCCEEDED]: 'succeeded',
  [CommandStatus.COMMAND_STATUS_FAILED]: 'failed',
  [CommandStatus.COMMAND_STATUS_EXPIRED]: 'expired',
  [CommandStatus.COMMAND_STATUS_REJECTED]: 'rejected',
};

export class CommandCenter {
  private readonly clock: Clock;
  private readonly timers: Timers;
  private expiryTimer: TimerHandle | undefined;
  private readonly counters: CommandCounters = {
    received: 0,
    delivered: 0,
    succeeded: 0,
    failed: 0,
    expired: 0,
    rejected: 0,
    unknownResults: 0,
  };

  constructor(private readonly options: CommandCenterOptions) {
    this.clock = options.clock ?? systemClock;
    this.timers = options.timers ?? systemTimers;
    options.registry.on('online', (deviceId, protocol) => {
      this.reportDevice(deviceId, true, protocol);
      this.deliverPending(deviceId);
    });
    options.registry.on('offline', (deviceId, protocol) => this.reportDevice(deviceId, false, protocol));
    this.scheduleExpiry();
  }

  /** A command from the backend, the upstream `origin` (perhaps again, after a reconnect). */
  fromBackend(command: Command, origin: string): void {
    this.counters.received++;
    const problem = invalid(command);
    let stored = this.options.store.add(command, origin);
    if (problem) stored = this.advance(command.commandId, CommandStatus.COMMAND_STATUS_REJECTED, { message: problem }) ?? stored;
    else if (stored.expiresAtMs <= this.clock.now()) stored = this.expire(stored) ?? stored;
    this.report([stored]);
    if (!FINAL_STATUSES.has(stored.status)) {
      this.deliver(stored);
      this.scheduleExpiry();
    }
  }

  /** The backend recorded a status. */
  backendAck(ack: CommandAck, from: string): void {
    const origin = this.options.store.get(ack.commandId)?.origin;
    if (origin === '' || origin === from) this.options.store.confirmed(ack.commandId, ack.status);
  }

  /** A device answered (SDK frame or MQTT result topic). Answers for another device's command are ignored. */
  fromDevice(deviceId: string, result: Pick<CommandResult, 'commandId' | 'status' | 'payload' | 'message'>): boolean {
    const command = this.options.store.get(result.commandId);
    if (!command || command.deviceId !== deviceId || !FINAL_STATUSES.has(result.status)) {
      this.counters.unknownResults++;
      return false;
    }
    const updated = this.advance(result.commandId, result.status, { payload: result.payload, message: result.message });
    if (updated) this.report([updated]);
    return true;
  }

  /** A channel handed the command over (MQTT: the device's PUBACK; SDK: the frame went out). */
  delivered(commandId: string): void {
    const updated = this.advance(commandId, CommandStatus.COMMAND_STATUS_DELIVERED);
    if (updated) this.report([updated]);
  }

  /** The uplink to `upstream` (re)connected: where every device is, and every status of its commands not yet confirmed. */
  uplinkReady(upstream: string): void {
    const now = this.clock.now();
    this.options.upstream.send(
      this.options.registry.online().map(({ deviceId, protocol }) => ({
        frame: { $case: 'deviceStatus', value: { deviceId, online: true, protocol, timeMs: now } },
      })),
      upstream,
    );
    this.report(this.options.store.unreported().filter((c) => c.origin === '' || c.origin === upstream));
  }

  stats(): CommandCounters & { stored: number } {
    return { ...this.counters, stored: this.options.store.size };
  }

  close(): void {
    if (this.expiryTimer !== undefined) this.timers.clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
  }

  private deliverPending(deviceId: string): void {
    for (const command of this.options.store.pendingFor(deviceId)) {
      if (command.expiresAtMs <= this.clock.now()) this.report([this.expire(command) ?? command]);
      else this.deliver(command);
    }
  }

  private deliver(command: StoredCommand): void {
    this.options.registry.channel(command.deviceId)?.deliver(command);
  }

  private advance(
    commandId: string,
    status: CommandStatus,
    result?: { payload?: Buffer; message?: string },
  ): StoredCommand | undefined {
    const before = this.options.store.get(commandId);
    const after = this.options.store.advance(commandId, status, result);
    if (after && before && after.status !== before.status) {
      const counter = STATUS_COUNTER[after.status];
      if (counter) this.counters[counter]++;
      if (FINAL_STATUSES.has(after.status)) {
        this.options.logger.info(
          { commandId, deviceId: after.deviceId, name: after.name, status: CommandStatus[after.status] },
          'command finished',
        );
      }
      return after;
    }
    return undefined;
  }

  private expire(command: StoredCommand): StoredCommand | undefined {
    return this.advance(command.commandId, CommandStatus.COMMAND_STATUS_EXPIRED, { message: 'not answered before it expired' });
  }

  /** Sends each command's status to the upstream it came from. */
  private report(commands: StoredCommand[]): void {
    const byOrigin = new Map<string, StoredCommand[]>();
    for (const c of commands) byOrigin.set(c.origin, [...(byOrigin.get(c.origin) ?? []), c]);
    for (const [origin, list] of byOrigin) {
      this.options.upstream.send(
        list.map((c) => ({
          frame: {
            $case: 'commandResult',
            value: {
              commandId: c.commandId,
              deviceId: c.deviceId,
              status: c.status,
              payload: c.resultPayload,
              message: c.message,
            },
          },
        })),
        origin === '' ? undefined : origin,
      );
    }
  }

  private reportDevice(deviceId: string, online: boolean, protocol: DeviceProtocol): void {
    this.options.upstream.send([
      { frame: { $case: 'deviceStatus', value: { deviceId, online, protocol, timeMs: this.clock.now() } } },
    ]);
  }

  private scheduleExpiry(): void {
    if (this.expiryTimer !== undefined) this.timers.clearTimeout(this.expiryTimer);
    const next = this.options.store.nextExpiryMs();
    if (next === undefined) return;
    this.expiryTimer = this.timers.setTimeout(
      () => {
        this.expiryTimer = undefined;
        const expired = this.options.store.expiredAt(this.clock.now()).map((c) => this.expire(c) ?? c);
        this.report(expired);
        this.scheduleExpiry();
      },
      Math.min(Math.max(0, next - this.clock.now()), 2 ** 31 - 1),
    );
    this.expiryTimer.unref?.();
  }
}

/** Why a command from the backend cannot be run, if it cannot. */
function invalid(command: Command): string | undefined {
  if (!DEVICE_ID_PATTERN.test(command.deviceId)) return `deviceId "${command.deviceId.slice(0, 140)}" is not a device id`;
  if (!ID_PATTERN.test(command.name)) return `name "${command.name.slice(0, 140)}" is not 1-128 of [A-Za-z0-9._:-]`;
  if (!/^[A-Za-z0-9._:-]{1,128}$/.test(command.commandId)) return 'commandId is not 1-128 of [A-Za-z0-9._:-]';
  return undefined;
}
