/**
 * The sockets MQTT arrives on: plain TCP (default 0.0.0.0:1883) and/or TLS (default port 8883), optionally
 * with client certificates checked against a CA (mTLS). Both feed the same aedes broker.
 */
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import type { HostPort } from '@fleetgate/core';
import { closeServer, listen, type TlsServerMaterial } from '@fleetgate/common';

export interface ListenerSettings {
  tcp?: HostPort;
  tls?: HostPort & { material: TlsServerMaterial };
  /** Sockets beyond this are dropped at accept (a guard for file descriptors; CONNACK 3 comes before it). */
  maxSockets: number;
}

export interface ListenerEvents {
  onSocket: (socket: Socket) => void;
  /** A TLS handshake failed: no certificate, an untrusted one, a protocol mismatch. */
  onTlsError: (err: Error) => void;
}

export class MqttListeners {
  readonly addresses: { tcp?: HostPort; tls?: HostPort } = {};
  private readonly servers: Server[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor() {}

  static async start(settings: ListenerSettings, events: ListenerEvents): Promise<MqttListeners> {
    const listeners = new MqttListeners();
    const accept = (socket: Socket) => {
      listeners.sockets.add(socket);
      socket.once('close', () => listeners.sockets.delete(socket));
      events.onSocket(socket);
    };
    try {
      if (settings.tcp) {
        // noDelay: a PUBACK is a 4-byte write; Nagle's algorithm would hold it back behind the client's delayed ACK.
        const server = createTcpServer({ noDelay: true }, accept);
        server.maxConnections = settings.maxSockets;
        listeners.servers.push(server);
        listeners.addresses.tcp = await listen(server, settings.tcp, 'MQTT listener (--mqtt)');
      }
      if (settings.tls) {
        const { cert, key, ca, clientAuth } = settings.tls.material;
        const server = createTlsServer(
          { cert, key, ...(ca ? { ca } : {}), requestCert: clientAuth, rejectUnauthorized: clientAuth, minVersion: 'TLSv1.2' },
          (socket) => {
            socket.setNoDelay(true);
            accept(socket);
          },
        );
        server.maxConnections = settings.maxSockets;
        server.on('tlsClientError', (err) => events.onTlsError(err));
        listeners.servers.push(server);
        listeners.addresses.tls = await listen(server, settings.tls, 'MQTT TLS listener (--mqtts)');
      }
    } catch (err: unknown) {
      await listeners.close();
      throw err;
    }
    return listeners;
  }

  /** Stops accepting and drops the open sockets. */
  async close(): Promise<void> {
    const stopped = Promise.all(this.servers.map((server) => closeServer(server)));
    for (const socket of this.sockets) socket.destroy();
    await stopped;
  }
}
