/**
 * Commands at the backend: created through the admin API, sent to the gateway that holds the device, followed
 * by the statuses that gateway reports.
 *
 * - Where a device is: the gateway that last reported it (DeviceStatus frames, sent on every connect and
 *   disconnect and after each Welcome). A command for a device never reported waits until one is.
 * - A command stays "pending" until its gateway confirms it (QUEUED); until then it is sent again whenever
 *   that gateway opens a stream or reports the device. Gateways recognise a command they already hold.
 * - Every status a gateway reports is recorded (forward only) and confirmed with CommandAck.
 * - A command no gateway confirmed before its expiry is expired here; one a gateway holds expires there.
 */
import { DEVICE_ID_PATTERN, ID_PATTERN } from '@fleetgate/core';
import type { Logger } from '@fleetgate/common';
import type { Command, CommandResult, DeviceStatus } from '@fleetgate/protos';
import { LOCAL_BUS, STATE_OF_STATUS, type CloudCommand, type CloudCommandStore, type CommandBus } from './command-store.ts';

/** The open stream of a gateway, as far as commands are concerned. */
export interface GatewayLink {
  readonly gatewayId: string;
  sendCommand(command: Command): void;
  sendCommandAck(commandId: string, status: CommandResult['status']): void;
}

export interface CreateCommand {
  deviceId: string;
  name: string;
  payload: Buffer;
  ttlMs: number;
}

export class CommandRouter {
  private readonly links = new Map<string, GatewayLink>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly store: CloudCommandStore,
    private readonly logger: Logger,
    private readonly bus: CommandBus = LOCAL_BUS,
  ) {
    this.sweeper = setInterval(() => void this.sweep(), 1000);
    this.sweeper.unref();
    // Another replica took a command: send it if this one holds the device's gateway.
    bus.onAnnounce((commandId) => void this.routeById(commandId));
  }

  async create({ deviceId, name, payload, ttlMs }: CreateCommand): Promise<CloudCommand> {
    if (!DEVICE_ID_PATTERN.test(deviceId)) throw new TypeError(`deviceId "${deviceId.slice(0, 140)}" is not a device id`);
    if (!ID_PATTERN.test(name)) throw new TypeError(`name "${name.slice(0, 140)}" is not 1-128 of [A-Za-z0-9._:-]`);
    const command = await this.store.create({ deviceId, name, payload, expiresAtMs: Date.now() + ttlMs });
    this.logger.info({ commandId: command.commandId, deviceId, name, ttlMs }, 'command created');
    if (!(await this.route(command))) this.bus.announce(command.commandId);
    return command;
  }

  async get(commandId: string): Promise<CloudCommand | undefined> {
    await this.expireUnconfirmed();
    return this.store.get(commandId);
  }

  /** A gateway's stream is open: send it the pending commands of the devices it holds. */
  async linked(link: GatewayLink): Promise<void> {
    this.links.set(link.gatewayId, link);
    await this.sendPending(link);
  }

  unlinked(link: GatewayLink): void {
    if (this.links.get(link.gatewayId) === link) this.links.delete(link.gatewayId);
  }

  async deviceStatus(link: GatewayLink, status: DeviceStatus): Promise<void> {
    if (!DEVICE_ID_PATTERN.test(status.deviceId)) return;
    const current = await this.store.location(status.deviceId);
    // An "offline" from a gateway the device has left since does not move it back.
    if (!status.online && current && current.gatewayId !== link.gatewayId) return;
    await this.store.locate(status.deviceId, {
      gatewayId: link.gatewayId,
      online: status.online,
      protocol: status.protocol,
      updatedAtMs: status.timeMs || Date.now(),
    });
    if (status.online) for (const command of await this.store.pending(status.deviceId)) this.send(link, command);
  }

  async commandResult(link: GatewayLink, result: CommandResult): Promise<void> {
    const state = STATE_OF_STATUS[result.status];
    if (state) {
      const updated = await this.store.update(result.commandId, state, {
        result: result.payload,
        message: result.message,
        gatewayId: link.gatewayId,
      });
      if (updated?.state === state)
        this.logger.info({ commandId: result.commandId, state, gatewayId: link.gatewayId }, 'command status');
    }
    // Confirmed even when unknown or stale, so that the gateway can let go of it.
    link.sendCommandAck(result.commandId, result.status);
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  /** Sends the command if this process holds its device's gateway; says whether it did. */
  private async route(command: CloudCommand): Promise<boolean> {
    const location = await this.store.location(command.deviceId);
    const link = location && this.links.get(location.gatewayId);
    if (link) this.send(link, command);
    return Boolean(link);
  }

  private async routeById(commandId: string): Promise<void> {
    try {
      const command = await this.store.get(commandId);
      if (command?.state === 'pending') await this.route(command);
    } catch (err: unknown) {
      this.logger.warn({ commandId, err: (err as Error).message }, 'could not route an announced command');
    }
  }

  private async sendPending(link: GatewayLink): Promise<void> {
    for (const command of await this.store.pending()) {
      if ((await this.store.location(command.deviceId))?.gatewayId === link.gatewayId) this.send(link, command);
    }
  }

  private send(link: GatewayLink, command: CloudCommand): void {
    link.sendCommand({
      commandId: command.commandId,
      deviceId: command.deviceId,
      name: command.name,
      payload: command.payload,
      expiresAtMs: command.expiresAtMs,
    });
  }

  private sweeping = false;

  /** Each second: expire what nobody took in time. */
  private async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      await this.expireUnconfirmed();
    } catch (err: unknown) {
      this.logger.warn({ err: (err as Error).message }, 'command sweep failed');
    } finally {
      this.sweeping = false;
    }
  }

  private async expireUnconfirmed(): Promise<void> {
    for (const command of await this.store.unconfirmedExpired(Date.now())) {
      await this.store.update(command.commandId, 'expired', {
        message: 'no gateway took it before it expired (the device was never reported, or its gateway was away)',
      });
    }
  }
}
