import type { Server as NetServer } from 'node:net';
import { FleetgateError, type HostPort } from '@fleetgate/core';

/** A listener that could not bind, with the address and a hint a person can act on. */
export class ListenError extends FleetgateError {
  override name = 'ListenError';
}

/**
 * Connections the kernel may hold before they are accepted (capped by net.core.somaxconn, 4096 on current
 * kernels). Node's default of 511 overflows when a whole site reconnects at once after a power cut, and each
 * overflow costs that device a SYN retransmit (1 s, then 3 s, 7 s...).
 */
const LISTEN_BACKLOG = 4096;

/**
 * Starts listening and resolves with the address actually bound (port 0 becomes the port the OS chose).
 * `what` names the listener in the error, e.g. "MQTT listener (--mqtt)".
 */
export function listen(server: NetServer, { host, port }: HostPort, what: string): Promise<HostPort> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      const hint = err.code === 'EADDRINUSE' ? ' (in use by another process: pick another port)' : '';
      reject(new ListenError(`${what} cannot listen on ${host}:${port}: ${err.code ?? err.message}${hint}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen({ port, host, backlog: LISTEN_BACKLOG }, () => {
      server.off('error', onError);
      const bound = server.address();
      resolve(typeof bound === 'object' && bound !== null ? { host, port: bound.port } : { host, port });
    });
  });
}

/** Closes a server; resolves once it stopped listening (open connections are the caller's business). */
export function closeServer(server: NetServer): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
  });
}
