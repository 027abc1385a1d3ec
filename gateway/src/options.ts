/** Everything a gateway is started with, its defaults, and the checks that refuse a gateway that cannot work. */
import { ConfigError, type Durability, type HostPort, ID_PATTERN } from '@fleetgate/core';
import { DEVICE_AUDIENCE, type KeySource, type TlsClientFiles, type TlsServerFiles } from '@fleetgate/common';
import type { RateLimit } from './ingress/rate-queue.ts';
import { isValidFilter } from './ingress/topic-filter.ts';
import { DEFAULT_GROUP_COMMIT, type GroupCommitSettings } from './journal/group-commit.ts';
import { MAX_UPSTREAMS, type JournalLimits } from './journal/journal.ts';
import type { Route } from './uplink/router.ts';
import { DEFAULT_UPLINK_SETTINGS, type UplinkSettings } from './uplink/uplink.ts';

export interface GatewayOptions {
  gatewayId: string;
  /** Plain MQTT listener; null for none. */
  mqtt: HostPort | null;
  /** MQTT over TLS listener (needs `tls`); none if absent. */
  mqtts?: HostPort;
  /** MQTT over WebSockets (HTTP, path /mqtt); none if absent. */
  ws?: HostPort;
  /** MQTT over secure WebSockets (HTTPS with `tls`, path /mqtt); none if absent. */
  wss?: HostPort;
  /** Device link (gRPC, device SDK) listener; null for none. On TLS when `tls` is given. */
  deviceGrpc: HostPort | null;
  /** Certificate and key of the MQTT TLS listener; clientAuth requires client certificates (mTLS). */
  tls?: TlsServerFiles;
  /**
   * The backends the journal is streamed to, each with its own cursor: a row is freed once every upstream it
   * was routed to has acknowledged it. At least one.
   */
  upstreams: UpstreamOptions[];
  /** Which records go to which upstreams: the first route whose topic filter matches decides. None: all go everywhere. */
  routes: RouteOptions[];
  /**
   * Upstreams no longer configured whose unacknowledged rows the journal may let go of (for them only). A
   * journal holding rows for an upstream that is neither configured nor named here refuses to start.
   */
  forgetUpstreams: string[];
  /** The folder of the journal. */
  dataDir: string;
  /** Admin HTTP listener (/healthz, /v1/stats); none if absent. */
  admin?: HostPort;
  durability: Durability;
  /** Devices need no credentials; the device id is the MQTT client id. The explicit opt-in for labs. */
  allowAnonymous: boolean;
  /** How device tokens are verified: an Ed25519 public key, or the HS256 secret. */
  deviceKey?: KeySource;
  /** The `aud` device tokens must carry. */
  deviceAudience: string;
  /** Revoked tokens (jti:... / sub:... lines); re-read on change and on SIGHUP. */
  revocationsFile?: string;
  /** ACL rules (YAML); re-read on SIGHUP. Default: each device under devices/{its id}/ only. */
  aclFile?: string;
  maxPayloadBytes: number;
  /** QoS 1 PUBACKs one connection may have pending before the gateway stops reading it (backpressure). */
  maxUnackedPerConnection: number;
  /** Devices connected at most; one more gets CONNACK 0x03. */
  maxConnections: number;
  /** The longest an MQTT session outlives its connection (MQTT 5 session expiry, 3.1.1 clean session 0). */
  maxSessionExpiryMs: number;
  /** Messages per second per device, with a burst; none if absent. */
  rateLimit?: RateLimit;
  groupCommit: GroupCommitSettings;
  /** Bounds of the journal (bytes, age) and what happens when full. */
  journalLimits: JournalLimits;
  /** A hard cap on the journal file (a small disk); past it appends are refused as on a full disk. */
  maxJournalFileBytes?: number;
  /** On SIGTERM, how long to wait for batches in flight to be acked before stopping anyway. */
  drainGraceMs: number;
  /** Memory for the newest committed records, which the uplink then sends without reading them back. */
  tailCacheBytes: number;
  uplink: Omit<UplinkSettings, 'target'>;
}

export interface UpstreamOptions {
  /** Names it in routes, stats, metrics and the journal: 1-32 of [a-z0-9_-], starting with a letter. */
  name: string;
  /** The backend's Uplink service, "host:port"; several are replicas of one backend, tried in turn. */
  addresses: string[];
  /** TLS to the backend: trust (caFile, else the system roots), client certificate for mTLS. Plain if absent. */
  tls?: TlsClientFiles & { serverName?: string };
  /** This gateway's token for this backend; re-read at every connection. */
  tokenFile?: string;
}

/** Which upstreams the records of some topics go to (see uplink/router.ts). */
export type RouteOptions = Route;

/** An upstream's name: it is a metric label and a journal key, so a small alphabet. */
export const UPSTREAM_NAME = /^[a-z][a-z0-9_-]{0,31}$/;

/** The upstream a gateway has when it is given addresses only (the --upstream flag). */
export const DEFAULT_UPSTREAM_NAME = 'default';

export const DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024;

export const GATEWAY_DEFAULTS = {
  mqtt: { host: '0.0.0.0', port: 1883 },
  mqttsPort: 8883,
  deviceGrpc: { host: '0.0.0.0', port: 50052 },
  upstreams: [{ name: DEFAULT_UPSTREAM_NAME, addresses: ['127.0.0.1:50051'] }] as UpstreamOptions[],
  forgetUpstreams: [] as string[],
  routes: [] as RouteOptions[],
  admin: { host: '127.0.0.1', port: 9180 },
  dataDir: './data/gateway',
  durability: 'power' as Durability,
  deviceAudience: DEVICE_AUDIENCE,
  maxPayloadBytes: DEFAULT_MAX_PAYLOAD_BYTES,
  maxUnackedPerConnection: 1000,
  maxConnections: 20_000,
  maxSessionExpiryMs: 86_400_000,
  groupCommit: DEFAULT_GROUP_COMMIT,
  journalLimits: { maxBytes: 1 << 30, maxAgeMs: 0, policy: 'drop-oldest' } as JournalLimits,
  drainGraceMs: 10_000,
  tailCacheBytes: 16 << 20,
  uplink: DEFAULT_UPLINK_SETTINGS,
};

/** Throws a ConfigError naming the first setting that cannot work. */
export function validateGatewayOptions(options: GatewayOptions): void {
  if (!ID_PATTERN.test(options.gatewayId)) {
    throw new ConfigError(
      '--gateway-id',
      `"${options.gatewayId}" must be 1-128 characters of [A-Za-z0-9._:-], starting with a letter or digit`,
    );
  }
  if (options.allowAnonymous && options.deviceKey) {
    throw new ConfigError(
      '--allow-anonymous',
      'cannot go with --device-key / --device-secret-file: choose tokens or anonymous devices',
    );
  }
  if (!options.allowAnonymous && !options.deviceKey) {
    throw new ConfigError(
      '--device-key',
      'no device authentication is configured: give --device-key FILE (the Ed25519 public key device tokens are ' +
        'signed for) or --device-secret-file FILE (HS256), or --allow-anonymous for a lab, where the MQTT client id is the device id',
    );
  }
  // MQTT off entirely is fine when the device link serves: a gateway for SDK devices only.
  if (!options.mqtt && !options.mqtts && !options.ws && !options.wss && !options.deviceGrpc) {
    throw new ConfigError('--mqtt', 'no device listener: --mqtt off needs --mqtts, --ws, --wss or --device-grpc');
  }
  if (options.mqtts && !options.tls) throw new ConfigError('--mqtts', 'needs --tls-cert and --tls-key');
  if (options.wss && !options.tls) throw new ConfigError('--wss', 'needs --tls-cert and --tls-key');
  validateUpstreams(options);
  positiveInteger('--max-payload-bytes', options.maxPayloadBytes);
  positiveInteger('--max-unacked-per-connection', options.maxUnackedPerConnection);
  positiveInteger('--max-connections', options.maxConnections);
  if (options.maxSessionExpiryMs < 1000 || options.maxSessionExpiryMs > 0xfffffffe * 1000) {
    throw new ConfigError('--max-session-expiry', 'must be between 1s and 136y (MQTT 5 counts it in seconds, 32 bits)');
  }
  if (options.rateLimit) {
    positiveInteger('--rate-limit', options.rateLimit.perSecond);
    positiveInteger('--rate-burst', options.rateLimit.burst);
  }
  positiveInteger('--journal-max-bytes', options.journalLimits.maxBytes, 0);
  positiveInteger('--journal-max-age', options.journalLimits.maxAgeMs, 0);
  if (!['drop-oldest', 'reject-new'].includes(options.journalLimits.policy)) {
    throw new ConfigError('--journal-full', `"${options.journalLimits.policy}" is not drop-oldest or reject-new`);
  }
  positiveInteger('--tail-cache-size', options.tailCacheBytes, 0);
  positiveInteger('--drain-grace-ms', options.drainGraceMs, 0);
  positiveInteger('--commit-interval-ms', options.groupCommit.intervalMs, 0);
  positiveInteger('--commit-max-rows', options.groupCommit.maxRows);
  positiveInteger('--uplink-window', options.uplink.window);
  positiveInteger('--backlog-window', options.uplink.backlogWindow);
  positiveInteger('--batch-max-records', options.uplink.maxBatchRecords);
  positiveInteger('--batch-max-bytes', options.uplink.maxBatchBytes);
  positiveInteger('--reconnect-max-ms', options.uplink.reconnectMaxMs);
  positiveInteger('--uplink-dead-after-ms', options.uplink.deadAfterMs, 2);
}

function validateUpstreams({ upstreams, routes, forgetUpstreams }: GatewayOptions): void {
  if (upstreams.length === 0)
    throw new ConfigError('upstreams', 'no upstream: give at least one (--upstream HOST:PORT, or upstreams: in the config file)');
  if (upstreams.length > MAX_UPSTREAMS)
    throw new ConfigError('upstreams', `${upstreams.length} upstreams; at most ${MAX_UPSTREAMS}`);
  const names = new Set<string>();
  upstreams.forEach((upstream, i) => {
    const field = `upstreams[${i}]`;
    if (!UPSTREAM_NAME.test(upstream.name)) {
      throw new ConfigError(`${field}.name`, `"${upstream.name}" must be 1-32 of [a-z0-9_-], starting with a letter`);
    }
    if (names.has(upstream.name)) throw new ConfigError(`${field}.name`, `"${upstream.name}" names two upstreams`);
    names.add(upstream.name);
    if (upstream.addresses.length === 0)
      throw new ConfigError(`${field}.address`, 'missing: HOST:PORT (several: HOST:PORT,HOST:PORT)');
    for (const address of upstream.addresses) {
      if (!/^[^\s,]+:\d{1,5}$/.test(address)) {
        throw new ConfigError(
          upstreams.length === 1 && upstream.name === DEFAULT_UPSTREAM_NAME ? '--upstream' : `${field}.address`,
          `"${address}" is not HOST:PORT (several: HOST:PORT,HOST:PORT)`,
        );
      }
    }
  });
  routes.forEach((route, i) => {
    const field = `routes[${i}]`;
    if (!isValidFilter(route.topic))
      throw new ConfigError(`${field}.topic`, `"${route.topic}" is not an MQTT topic filter (like devices/+/telemetry/alarms/#)`);
    if (route.to.length === 0) throw new ConfigError(`${field}.to`, 'names no upstream: give at least one');
    for (const name of route.to) {
      if (!names.has(name))
        throw new ConfigError(`${field}.to`, `"${name}" is not an upstream (upstreams: ${[...names].join(', ')})`);
    }
  });
  for (const name of forgetUpstreams) {
    if (names.has(name))
      throw new ConfigError(
        'forget-upstreams',
        `"${name}" is a configured upstream: only upstreams no longer configured can be forgotten`,
      );
  }
}

function positiveInteger(field: string, value: number, min = 1): void {
  if (!Number.isInteger(value) || value < min) throw new ConfigError(field, `${value} is not an integer >= ${min}`);
}
