/** What a DeviceClient is made with and what it answers: its options, a send's options and result, its stats. */
import type { ConnectivityState } from '@fleetgate/core';
import type { OutboxOption } from './outbox/open-outbox.ts';

export interface TlsOptions {
  /** CA the gateway's certificate must chain to (PEM); the system's CAs if absent. */
  ca?: string | Buffer;
  /** A client certificate and key (PEM), for gateways that require mTLS. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** The name the gateway's certificate must carry, if not the host of `url`. */
  serverName?: string;
}

export interface ConnectOptions {
  /** The gateway's device link: "host:port", "grpc://host:port", or "grpcs://host:port" (TLS). */
  url: string;
  /** The device token; or getToken, asked again at every connection (rotate tokens there). */
  token?: string;
  getToken?: () => string | Promise<string>;
  /** Only for a gateway that accepts anonymous devices: the id to use. */
  deviceId?: string;
  /** TLS to the gateway; implied by grpcs://. */
  tls?: boolean | TlsOptions;
  /** Where messages wait until the gateway commits them: memory (default) or a durable SQLite file. */
  outbox?: OutboxOption;
  /** Messages sent and not yet acked, at most. */
  window?: number;
  reconnect?: { initialMs?: number; maxMs?: number };
  /** A connection that gets no Welcome in this time is given up and retried. */
  welcomeTimeoutMs?: number;
}

export interface SendOptions {
  /** "" (default) or a stream name, e.g. "vibration". */
  stream?: string;
  contentType?: string;
  /** When the device measured, ms since the epoch (default: now). */
  timeMs?: number;
}

export interface SendResult {
  /** The message's seq within this device's epoch. */
  seq: number;
}

export interface ClientStats {
  state: ConnectivityState;
  deviceId: string | undefined;
  epoch: string;
  /** Messages in the outbox: taken and not committed by the gateway. */
  queued: number;
  /** Highest seq the gateway acked. */
  ackedThrough: number;
  sessions: number;
  commands: number;
  lastError: string | null;
}
