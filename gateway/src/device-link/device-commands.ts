/**
 * Commands on a device-link stream (design.md, "Commands go the other way"): the channel the session announces
 * to the device registry writes each command as a Command frame; DELIVERED means written to the stream. The
 * device's CommandResult frames go to the command center (device-session.ts).
 */
import type { GatewayFrame } from '@fleetgate/protos';
import type { CommandCenter } from '../commands/command-center.ts';
import type { StoredCommand } from '../commands/command-store.ts';
import type { DeviceChannel } from '../commands/device-registry.ts';

export class SdkCommandChannel implements DeviceChannel {
  readonly protocol = 'sdk';

  constructor(
    private readonly session: { readonly ended: boolean },
    private readonly call: { write(frame: GatewayFrame): unknown },
    private readonly center: Pick<CommandCenter, 'delivered'>,
  ) {}

  deliver(command: StoredCommand): void {
    if (this.session.ended) return;
    const { commandId, deviceId, name, payload, expiresAtMs } = command;
    this.call.write({ frame: { $case: 'command', value: { commandId, deviceId, name, payload, expiresAtMs } } });
    this.center.delivered(commandId);
  }
}
