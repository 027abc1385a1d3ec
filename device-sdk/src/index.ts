/**
 * @fleetgate/device-sdk: what a Node device embeds to talk to a fleetgate gateway.
 *
 *   const client = connect({ url: 'gateway.local:50052', getToken: () => readFileSync('device.token', 'utf8') });
 *   await client.send({ temp: 21.5 });          // resolves once the gateway committed it
 *   client.onCommand('reboot', async (cmd) => { ... return { ok: true }; });
 *   await client.close();
 */
import type { ConnectOptions } from './client-options.ts';
import { DeviceClient } from './device-client.ts';

/** Creates a client and starts connecting (forever, with backoff). Sends are taken at once, while offline too. */
export function connect(options: ConnectOptions): DeviceClient {
  return new DeviceClient(options);
}

export { ConnectivityState, type StateChange } from '@fleetgate/core';
export type { ClientStats, ConnectOptions, SendOptions, SendResult, TlsOptions } from './client-options.ts';
export type { CommandHandler, CommandRequest } from './command-runner.ts';
export { DeviceClient, SDK_VERSION } from './device-client.ts';
export type { OutboxOption } from './outbox/open-outbox.ts';
export { ClientClosedError, OutboxFlushError, OutboxFullError, PayloadTooLargeError } from './errors.ts';
export { MemoryOutbox } from './outbox/outbox-memory.ts';
export { SqliteOutbox, type SqliteOutboxOptions } from './outbox/outbox-sqlite.ts';
export { DEFAULT_OUTBOX_LIMITS, type Outbox, type OutboxEntry, type OutboxLimits, type OutboxMessage } from './outbox/outbox.ts';
