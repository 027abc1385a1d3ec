/** Everything a gateway is started with, its defaults, and the checks that refuse a gateway that cannot work. */
import { ConfigError, DEVICE_AUDIENCE, type Durability, type HostPort, type KeySource, type TlsClientFiles, type TlsServerFiles } from '@fleetgate/common';
import type { RateLimit } from './ingress/device-connection.ts';
import { DEVICE_ID } from './ingress/topics.ts';
import { DEFAULT_GROUP_COMMIT, type GroupCommitSettings } from './journal/group-commit.ts';
import type { JournalLimits } from './journal/journal.ts';
import { DEFAULT_UPLINK_SETTINGS, type UplinkSettings } from './uplink/uplink.ts';

export interface GatewayOptions {
  gatewayId: string;
  /** Plain MQTT listener; null for none. */
  mqtt: HostPort | null;
  /** MQTT over TLS listener (needs `tls`); none if absent. */
  mqtts?: HostPort;
  /** Device link (gRPC, device SDK) listener; null for none. On TLS when `tls` is given. */
  deviceGrpc: HostPort | null;
  /** Certificate and key of the MQTT TLS listener; clientAuth requires client certificates (mTLS). */
  tls?: TlsServerFiles;
  /** The backend's Uplink service, "host:port". */
  upstream: string;
  /** TLS to the backend: trust (caFile, else the system roots), client certificate for mTLS. Plain if absent. */
  upstreamTls?: TlsClientFiles & { serverName?: string };
  /** This gateway's own token, sent to the backend; re-read at every connection. */
  tokenFile?: string;
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

export const DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024;

export const GATEWAY_DEFAULTS = {
  mqtt: { host: '0.0.0.0', port: 1883 },
  mqttsPort: 8883,
  deviceGrpc: { host: '0.0.0.0', port: 50052 },
  upstream: '127.0.0.1:50051',
  admin: { host: '127.0.0.1', port: 9180 },
  dataDir: './data/gateway',
  durability: 'power' as Durability,
  deviceAudience: DEVICE_AUDIENCE,
  maxPayloadBytes: DEFAULT_MAX_PAYLOAD_BYTES,
  maxUnackedPerConnection: 1000,
  maxConnections: 20_000,
  groupCommit: DEFAULT_GROUP_COMMIT,
  journalLimits: { maxBytes: 1 << 30, maxAgeMs: 0, policy: 'drop-oldest' } as JournalLimits,
  drainGraceMs: 10_000,
  tailCacheBytes: 16 << 20,
  uplink: DEFAULT_UPLINK_SETTINGS,
};

/** Throws a ConfigError naming the first setting that cannot work. */
export function validateGatewayOptions(options: GatewayOptions): void {
  if (!DEVICE_ID.test(options.gatewayId)) {
    throw new ConfigError('--gateway-id', `"${options.gatewayId}" must be 1-128 characters of [A-Za-z0-9._:-], starting with a letter or digit`);
  }
  if (options.allowAnonymous && options.deviceKey) {
    throw new ConfigError('--allow-anonymous', 'cannot go with --device-key / --device-secret-file: choose tokens or anonymous devices');
  }
  if (!options.allowAnonymous && !options.deviceKey) {
    throw new ConfigError(
      '--device-key',
      'no device authentication is configured: give --device-key FILE (the Ed25519 public key device tokens are ' +
        'signed for) or --device-secret-file FILE (HS256), or --allow-anonymous for a lab, where the MQTT client id is the device id',
    );
  }
  if (!options.mqtt && !options.mqtts) throw new ConfigError('--mqtt', 'no MQTT listener: --mqtt off needs --mqtts');
  if (options.mqtts && !options.tls) throw new ConfigError('--mqtts', 'needs --tls-cert and --tls-key');
  for (const address of options.upstream.split(',')) {
    if (!/^[^\s,]+:\d{1,5}$/.test(address)) throw new ConfigError('--upstream', `"${address}" is not HOST:PORT (several: HOST:PORT,HOST:PORT)`);
  }
  positiveInteger('--max-payload-bytes', options.maxPayloadBytes);
  positiveInteger('--max-unacked-per-connection', options.maxUnackedPerConnection);
  positiveInteger('--max-connections', options.maxConnections);
  if (options.rateLimit) {
    positiveInteger('--rate-limit', options.rateLimit.perSecond);
    positiveInteger('--rate-burst', options.rateLimit.burst);
  }
  positiveInteger('--journal-max-bytes', options.journalLimits.maxBytes, 0);
  positiveInteger('--journal-max-age', options.journalLimits.maxAgeMs, 0);
  if (!['drop-oldest', 'reject-new'].includes(options.journalLimits.policy)) {
    throw new ConfigError('--journal-full', `"${options.journalLimits.policy}" is not drop-oldest or reject-new`);
  }
  positiveInteger('--drain-grace-ms', options.drainGraceMs, 0);
  positiveInteger('--commit-interval-ms', options.groupCommit.intervalMs, 0);
  positiveInteger('--commit-max-rows', options.groupCommit.maxRows);
  positiveInteger('--uplink-window', options.uplink.window);
  positiveInteger('--backlog-window', options.uplink.backlogWindow);
  positiveInteger('--batch-max-records', options.uplink.maxBatchRecords);
  positiveInteger('--batch-max-bytes', options.uplink.maxBatchBytes);
  positiveInteger('--reconnect-max-ms', options.uplink.reconnectMaxMs);
}

function positiveInteger(field: string, value: number, min = 1): void {
  if (!Number.isInteger(value) || value < min) throw new ConfigError(field, `${value} is not an integer >= ${min}`);
}
