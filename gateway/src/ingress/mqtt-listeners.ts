/**
 * The transports MQTT arrives on, all feeding the same aedes broker (the same authentication, ACL, limits and
 * journal):
 *   tcp  plain TCP (default 0.0.0.0:1883)
 *   tls  TLS (default port 8883), optionally with client certificates checked against a CA (mTLS)
 *   ws   MQTT over WebSockets (MQTT 5 section 6, 3.1.1 section 6) on HTTP, path /mqtt
 *   wss  the same on HTTPS, with the TLS listener's certificate settings
 * A WebSocket connection must offer the "mqtt" subprotocol [MQTT-6.0.0-3]; each is handed on as a byte stream
 * (ws' createWebSocketStream), whose binary messages carry the MQTT packets [MQTT-6.0.0-1].
 */
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer } from 'node:tls';
import { createWebSocketStream, WebSocketServer } from 'ws';
import type { HostPort } from '@fleetgate/core';
import { closeServer, listen, type TlsServerMaterial } from '@fleetgate/common';

export type Transport = 'tcp' | 'tls' | 'ws' | 'wss';
export const TRANSPORTS = ['tcp', 'tls', 'ws', 'wss'] as const satisfies readonly Transport[];

/** The path MQTT over WebSockets is served on (the one mqtt.js, Paho and mosquitto use by default). */
export const WS_PATH = '/mqtt';
/** The subprotocols accepted: "mqtt" [MQTT-6.0.0-3], and the one MQTT 3.1 clients offer. */
const WS_PROTOCOLS = ['mqtt', 'mqttv3.1'];

export interface ListenerSettings {
  tcp?: HostPort;
  tls?: HostPort & { material: TlsServerMaterial };
  ws?: HostPort;
  wss?: HostPort & { material: TlsServerMaterial };
  /** Sockets beyond this are dropped at accept (a guard for file descriptors; CONNACK 3 comes before it). */
  maxSockets: number;
  /** The largest WebSocket message accepted: the largest MQTT packet (a bigger one ends the connection, 1009). */
  maxMessageBytes: number;
}

export interface ListenerEvents {
  onStream: (stream: Duplex, transport: Transport, remoteAddress: string | undefined) => void;
  /** A TLS handshake failed: no certificate, an untrusted one, a protocol mismatch. */
  onTlsError: (err: Error) => void;
}

export class MqttListeners {
  readonly addresses: Partial<Record<Transport, HostPort>> = {};
  private readonly servers: Server[] = [];
  private readonly webSockets: WebSocketServer[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor() {}

  static async start(settings: ListenerSettings, events: ListenerEvents): Promise<MqttListeners> {
    const listeners = new MqttListeners();
    const track = (socket: Socket) => {
      listeners.sockets.add(socket);
      socket.once('close', () => listeners.sockets.delete(socket));
    };
    const accept = (transport: Transport) => (socket: Socket) => {
      // noDelay: a PUBACK is a 4-byte write; Nagle's algorithm would hold it back behind the client's delayed ACK.
      socket.setNoDelay(true);
      track(socket);
      events.onStream(socket, transport, socket.remoteAddress);
    };
    const tlsOptions = ({ cert, key, ca, clientAuth }: TlsServerMaterial) => ({
      cert,
      key,
      ...(ca ? { ca } : {}),
      requestCert: clientAuth,
      rejectUnauthorized: clientAuth,
      minVersion: 'TLSv1.2' as const,
    });
    const serve = async (server: Server, where: HostPort, what: string, transport: Transport) => {
      server.maxConnections = settings.maxSockets;
      listeners.servers.push(server);
      listeners.addresses[transport] = await listen(server, where, what);
    };
    try {
      if (settings.tcp) await serve(createTcpServer(accept('tcp')), settings.tcp, 'MQTT listener (--mqtt)', 'tcp');
      if (settings.tls) {
        const server = createTlsServer(tlsOptions(settings.tls.material), accept('tls'));
        server.on('tlsClientError', (err) => events.onTlsError(err));
        await serve(server, settings.tls, 'MQTT TLS listener (--mqtts)', 'tls');
      }
      if (settings.ws) {
        const server = createHttpServer(notMqtt);
        listeners.webSocket(server, 'ws', settings, events, track);
        await serve(server, settings.ws, 'MQTT over WebSocket listener (--ws)', 'ws');
      }
      if (settings.wss) {
        const server = createHttpsServer(tlsOptions(settings.wss.material), notMqtt);
        server.on('tlsClientError', (err) => events.onTlsError(err));
        listeners.webSocket(server, 'wss', settings, events, track);
        await serve(server, settings.wss, 'MQTT over secure WebSocket listener (--wss)', 'wss');
      }
    } catch (err: unknown) {
      await listeners.close();
      throw err;
    }
    return listeners;
  }

  /** Stops accepting and drops the open sockets. */
  async close(): Promise<void> {
    for (const wss of this.webSockets) wss.close();
    const stopped = Promise.all(this.servers.map((server) => closeServer(server)));
    for (const socket of this.sockets) socket.destroy();
    await stopped;
  }

  private webSocket(
    server: HttpServer | HttpsServer,
    transport: 'ws' | 'wss',
    settings: ListenerSettings,
    events: ListenerEvents,
    track: (socket: Socket) => void,
  ): void {
    server.on('connection', (socket: Socket) => {
      socket.setNoDelay(true);
      track(socket);
    });
    const wss = new WebSocketServer({
      server,
      path: WS_PATH,
      maxPayload: settings.maxMessageBytes,
      perMessageDeflate: false,
      handleProtocols: (offered) => WS_PROTOCOLS.find((p) => offered.has(p)) ?? false,
    });
    this.webSockets.push(wss);
    wss.on('connection', (ws, req: IncomingMessage) => {
      // [MQTT-6.0.0-3]: no MQTT subprotocol offered, no MQTT: 1002 protocol error.
      if (ws.protocol === '') return ws.close(1002, 'offer the "mqtt" WebSocket subprotocol');
      const stream = createWebSocketStream(ws);
      stream.on('error', () => stream.destroy());
      events.onStream(stream, transport, req.socket.remoteAddress);
    });
  }
}

/** A plain HTTP request to a WebSocket listener. */
function notMqtt(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' });
  res.end(`MQTT over WebSockets: open a WebSocket to ${WS_PATH} with the "mqtt" subprotocol\n`);
}
