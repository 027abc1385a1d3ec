/**
 * The gRPC channel to the gateway's device link: the URL read (host:port, grpc://, grpcs://), TLS credentials, and
 * the channel's keepalive and reconnect settings. grpc-js reconnects the channel itself; the session on it (Hello,
 * Welcome, resends) is the client's (device-client.ts).
 */
import { credentials, type ChannelCredentials } from '@grpc/grpc-js';
import { DeviceLinkClient } from '@fleetgate/protos';
import type { ConnectOptions } from './client-options.ts';

export type LinkClient = InstanceType<typeof DeviceLinkClient>;

export function openLinkChannel(options: ConnectOptions): LinkClient {
  const { target, secure } = parseUrl(options.url);
  return new DeviceLinkClient(target, channelCredentials(secure || Boolean(options.tls), options.tls), {
    'grpc.keepalive_time_ms': 10_000,
    'grpc.keepalive_timeout_ms': 5_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 5_000,
    ...(typeof options.tls === 'object' && options.tls.serverName
      ? { 'grpc.ssl_target_name_override': options.tls.serverName, 'grpc.default_authority': options.tls.serverName }
      : {}),
  });
}

function parseUrl(url: string): { target: string; secure: boolean } {
  const match = /^(?:(grpcs?):\/\/)?([^/]+)\/?$/.exec(url);
  if (!match) throw new TypeError(`url "${url}" is not host:port, grpc://host:port or grpcs://host:port`);
  return { target: match[2]!, secure: match[1] === 'grpcs' };
}

function channelCredentials(secure: boolean, tls: ConnectOptions['tls']): ChannelCredentials {
  if (!secure) return credentials.createInsecure();
  const o = typeof tls === 'object' ? tls : {};
  const pem = (v: string | Buffer | undefined) => (v === undefined ? null : Buffer.from(v));
  return credentials.createSsl(pem(o.ca), pem(o.key), pem(o.cert));
}
