/**
 * Commands to MQTT devices (design.md, "Commands go the other way"): a connected device is announced to the
 * device registry with a channel that publishes each command to its own connection, on
 * devices/{id}/commands/{name}/{commandId} at QoS 1, whatever it subscribed to. Its answer comes back as a
 * PUBLISH on devices/{id}/command-results/{commandId} (authorize-publish.ts, command-results.ts).
 *
 * MQTT 5 (3.3.2.3): the command's TTL is the PUBLISH's Message Expiry Interval, so a device or a queue holding it
 * drops it once expired [MQTT-3.3.2-5]; the Response Topic is that command-results topic and the Correlation Data
 * the command id, so a request/response client answers where the gateway listens.
 */
import type { Client } from 'aedes';
import type { CommandCenter } from '../commands/command-center.ts';
import type { StoredCommand } from '../commands/command-store.ts';
import type { DeviceChannel, DeviceRegistry } from '../commands/device-registry.ts';
import type { DeviceConnection } from './device-connection.ts';
import type { Clock } from '@fleetgate/core';
import { commandResultTopic, commandTopic } from './topics.ts';

export class MqttCommands {
  constructor(
    private readonly commands: { registry: DeviceRegistry; center: CommandCenter },
    private readonly clock: Clock,
  ) {}

  /** The device is reachable for commands (aedes' 'clientReady'). */
  connected(client: Client, connection: DeviceConnection): void {
    const channel: DeviceChannel = { protocol: 'mqtt', deliver: (command) => this.deliver(client, command) };
    connection.channel = channel;
    this.commands.registry.connected(connection.deviceId, channel);
  }

  /** It is not any more (aedes' 'clientDisconnect'). */
  disconnected(connection: DeviceConnection): void {
    if (connection.channel) this.commands.registry.disconnected(connection.deviceId, connection.channel);
  }

  /**
   * DELIVERED means written to the device's connection; a device that reconnects before answering gets its
   * unanswered commands again.
   */
  private deliver(client: Client, command: StoredCommand): void {
    const expirySeconds = Math.ceil((command.expiresAtMs - this.clock.now()) / 1000);
    if (expirySeconds <= 0) return; // expired: the command center reports it so
    const packet = {
      cmd: 'publish' as const,
      topic: commandTopic(command.deviceId, command.name, command.commandId),
      payload: command.payload,
      qos: 1 as const,
      retain: false,
      dup: false,
      ...(client.version === 5
        ? {
            properties: {
              messageExpiryInterval: expirySeconds,
              responseTopic: commandResultTopic(command.deviceId, command.commandId),
              correlationData: Buffer.from(command.commandId),
            },
          }
        : {}),
    };
    client.publish(packet, (err?: Error) => {
      if (!err) this.commands.center.delivered(command.commandId);
    });
  }
}
