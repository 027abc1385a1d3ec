/** Everything a gateway is started with, its defaults, and the checks that refuse a gateway that cannot work. */
import { ConfigError, type Durability, type HostPort } from '@fleetgate/common';
import { DEFAULT_GROUP_COMMIT, type GroupCommitSettings } from './journal/group-commit.ts';
import { DEFAULT_UPLINK_SETTINGS, type UplinkSettings } from './uplink/uplink.ts';
import { DEVICE_ID } from './ingress/topics.ts';

export interface GatewayOptions {
  gatewayId: string;
  /** MQTT listener. */
  mqtt: HostPort;
  /** The backend's Uplink service, "host:port". */
  upstream: string;
  /** The folder of the journal. */
  dataDir: string;
  /** Admin HTTP listener (/healthz, /v1/stats); none if absent. */
  admin?: HostPort;
  durability: Durability;
  /** Devices need no credentials; the device id is the MQTT client id. The explicit opt-in for labs. */
  allowAnonymous: boolean;
  maxPayloadBytes: number;
  /** QoS 1 PUBACKs one connection may have pending before the gateway stops reading it (backpressure). */
  maxUnackedPerConnection: number;
  groupCommit: GroupCommitSettings;
  /** Memory for the newest committed records, which the uplink then sends without reading them back. */
  tailCacheBytes: number;
  uplink: Omit<UplinkSettings, 'target'>;
}

export const DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024;

export const GATEWAY_DEFAULTS = {
  mqtt: { host: '0.0.0.0', port: 1883 },
  upstream: '127.0.0.1:50051',
  admin: { host: '127.0.0.1', port: 9180 },
  dataDir: './data/gateway',
  durability: 'power' as Durability,
  maxPayloadBytes: DEFAULT_MAX_PAYLOAD_BYTES,
  maxUnackedPerConnection: 1000,
  groupCommit: DEFAULT_GROUP_COMMIT,
  tailCacheBytes: 16 << 20,
  uplink: DEFAULT_UPLINK_SETTINGS,
};

/** Throws a ConfigError naming the first setting that cannot work. */
export function validateGatewayOptions(options: GatewayOptions): void {
  if (!DEVICE_ID.test(options.gatewayId)) {
    throw new ConfigError('--gateway-id', `"${options.gatewayId}" must be 1-128 characters of [A-Za-z0-9._:-], starting with a letter or digit`);
  }
  if (!options.allowAnonymous) {
    throw new ConfigError(
      '--allow-anonymous',
      'no device authentication is configured. Device tokens are not available yet; to accept devices without ' +
        'credentials (the MQTT client id becomes the device id), pass --allow-anonymous',
    );
  }
  if (!/^[^\s]+:\d{1,5}$/.test(options.upstream)) {
    throw new ConfigError('--upstream', `"${options.upstream}" is not HOST:PORT`);
  }
  positiveInteger('--max-payload-bytes', options.maxPayloadBytes);
  positiveInteger('maxUnackedPerConnection', options.maxUnackedPerConnection);
  positiveInteger('--commit-interval-ms', options.groupCommit.intervalMs, 0);
  positiveInteger('--commit-max-rows', options.groupCommit.maxRows);
  positiveInteger('--uplink-window', options.uplink.window);
  positiveInteger('--batch-max-records', options.uplink.maxBatchRecords);
  positiveInteger('--batch-max-bytes', options.uplink.maxBatchBytes);
  positiveInteger('--reconnect-max-ms', options.uplink.reconnectMaxMs);
}

function positiveInteger(field: string, value: number, min = 1): void {
  if (!Number.isInteger(value) || value < min) throw new ConfigError(field, `${value} is not an integer >= ${min}`);
}
