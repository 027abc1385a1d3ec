/**
 * @fleetgate/device-sdk: what a Node device embeds to talk to a fleetgate gateway.
 *
 *   const client = connect({ url: 'gateway.local:50052', getToken: () => readFileSync('device.token', 'utf8') });
 *   await client.send({ temp: 21.5 });          // resolves once the gateway committed it
 *   client.onCommand('reboot', async (cmd) => { ... return { ok: true }; });
 *   await client.close();
 */
import { DeviceClient, type ConnectOptions } from './device-client.ts';

/** Creates a client and starts connecting (forever, with backoff). Sends are taken at once, while offline too. */
export function connect(options: ConnectOptions): DeviceClient {
  return new DeviceClient(options);
}

export { ConnectivityState, type StateChange } from '@fleetgate/core';
export {
  DeviceClient,
  SDK_VERSION,
  type ClientStats,
  type CommandHandler,
  type CommandRequest,
  type ConnectOptions,
  type OutboxOption,
  type SendOptions,
  type SendResult,
  type TlsOptions,
} from './device-client.ts';
export { ClientClosedError, OutboxFullError, PayloadTooLargeError } from './errors.ts';
export { MemoryOutbox } from './outbox/outbox-memory.ts';
export { SqliteOutbox, type SqliteOutboxOptions } from './outbox/outbox-sqlite.ts';
export { DEFAULT_OUTBOX_LIMITS, type Outbox, type OutboxEntry, type OutboxLimits, type OutboxMessage } from './outbox/outbox.ts';
