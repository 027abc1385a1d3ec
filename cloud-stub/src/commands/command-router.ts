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
import { ID_PATTERN, type Logger } from '@fleetgate/common';
import type { Command, CommandResult, DeviceStatus } from '@fleetgate/protos';
import { STATE_OF_STATUS, type CloudCommand, type CloudCommandStore } from './command-store.ts';

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
  ) {
    this.sweeper = setInterval(() => this.expireUnconfirmed(), 1000);
    this.sweeper.unref();
  }

  create({ deviceId, name, payload, ttlMs }: CreateCommand): CloudCommand {
    if (!ID_PATTERN.test(deviceId)) throw new TypeError(`deviceId "${deviceId.slice(0, 140)}" is not 1-128 of [A-Za-z0-9._:-]`);
    if (!ID_PATTERN.test(name)) throw new TypeError(`name "${name.slice(0, 140)}" is not 1-128 of [A-Za-z0-9._:-]`);
    const command = this.store.create({ deviceId, name, payload, expiresAtMs: Date.now() + ttlMs });
    this.logger.info({ commandId: command.commandId, deviceId, name, ttlMs }, 'command created');
    this.route(command);
    return command;
  }

  get(commandId: string): CloudCommand | undefined {
    this.expireUnconfirmed();
    return this.store.get(commandId);
  }

  /** A gateway's stream is open: send it the pending commands of the devices it holds. */
  linked(link: GatewayLink): void {
    this.links.set(link.gatewayId, link);
    for (const command of this.store.pending()) {
      if (this.store.location(command.deviceId)?.gatewayId === link.gatewayId) this.send(link, command);
    }
  }

  unlinked(link: GatewayLink): void {
    if (this.links.get(link.gatewayId) === link) this.links.delete(link.gatewayId);
  }

  deviceStatus(link: GatewayLink, status: DeviceStatus): void {
    if (!ID_PATTERN.test(status.deviceId)) return;
    const current = this.store.location(status.deviceId);
    // An "offline" from a gateway the device has left since does not move it back.
    if (!status.online && current && current.gatewayId !== link.gatewayId) return;
    this.store.locate(status.deviceId, { gatewayId: link.gatewayId, online: status.online, protocol: status.protocol, updatedAtMs: status.timeMs || Date.now() });
    if (status.online) for (const command of this.store.pending(status.deviceId)) this.send(link, command);
  }

  commandResult(link: GatewayLink, result: CommandResult): void {
    const state = STATE_OF_STATUS[result.status];
    if (state) {
      const updated = this.store.update(result.commandId, state, { result: result.payload, message: result.message, gatewayId: link.gatewayId });
      if (updated?.state === state) this.logger.info({ commandId: result.commandId, state, gatewayId: link.gatewayId }, 'command status');
    }
    // Confirmed even when unknown or stale, so that the gateway can let go of it.
    link.sendCommandAck(result.commandId, result.status);
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  private route(command: CloudCommand): void {
    const location = this.store.location(command.deviceId);
    const link = location && this.links.get(location.gatewayId);
    if (link) this.send(link, command);
  }

  private send(link: GatewayLink, command: CloudCommand): void {
    link.sendCommand({ commandId: command.commandId, deviceId: command.deviceId, name: command.name, payload: command.payload, expiresAtMs: command.expiresAtMs });
  }

  private expireUnconfirmed(): void {
    for (const command of this.store.unconfirmedExpired(Date.now())) {
      this.store.update(command.commandId, 'expired', { message: 'no gateway took it before it expired (the device was never reported, or its gateway was away)' });
    }
  }
}
