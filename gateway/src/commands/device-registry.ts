/**
 * Which devices are connected to this gateway right now, and how to reach each: the way commands find a device,
 * whichever protocol it speaks. A device connected both ways is reached through the device SDK.
 */
import { EventEmitter } from 'node:events';
import type { StoredCommand } from './command-store.ts';

export type DeviceProtocol = 'mqtt' | 'sdk';

export interface DeviceChannel {
  protocol: DeviceProtocol;
  /** Hands a command to the device; the channel reports DELIVERED and the result through the CommandCenter. */
  deliver(command: StoredCommand): void;
}

export class DeviceRegistry extends EventEmitter<{ online: [string, DeviceProtocol]; offline: [string, DeviceProtocol] }> {
  private readonly devices = new Map<string, Partial<Record<DeviceProtocol, DeviceChannel>>>();

  /** A device connected (or reconnected, taking over its previous connection of the same protocol). */
  connected(deviceId: string, channel: DeviceChannel): void {
    const channels = this.devices.get(deviceId) ?? {};
    const wasOnline = Object.keys(channels).length > 0;
    channels[channel.protocol] = channel;
    this.devices.set(deviceId, channels);
    if (!wasOnline) this.emit('online', deviceId, channel.protocol);
  }

  /** A connection ended; ignored if that connection was already replaced. */
  disconnected(deviceId: string, channel: DeviceChannel): void {
    const channels = this.devices.get(deviceId);
    if (!channels || channels[channel.protocol] !== channel) return;
    delete channels[channel.protocol];
    if (Object.keys(channels).length === 0) {
      this.devices.delete(deviceId);
      this.emit('offline', deviceId, channel.protocol);
    }
  }

  channel(deviceId: string): DeviceChannel | undefined {
    const channels = this.devices.get(deviceId);
    return channels?.sdk ?? channels?.mqtt;
  }

  /** Every connected device, with the protocol commands would use. */
  online(): Array<{ deviceId: string; protocol: DeviceProtocol }> {
    return [...this.devices.keys()].map((deviceId) => ({ deviceId, protocol: this.channel(deviceId)!.protocol }));
  }

  get size(): number {
    return this.devices.size;
  }
}
