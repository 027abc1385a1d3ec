/**
 * `fleetgate config check FILE`: everything a start would check short of opening sockets. The file is resolved
 * as `fleetgate gateway --config FILE` (or cloud) would resolve it, then the files it names are read; on success
 * a few lines say what would run.
 */
import { formatHostPort } from '@fleetgate/core';
import ms from 'ms';
import type { GatewayOptions } from '@fleetgate/gateway';
import { cloudServeSettingsCommand, loadCloudMaterial, resolveCloudOptions, type CloudServeOptions } from './cloud-settings.ts';
import { loadConfigFile, type ConfigFile } from './config-file.ts';
import { gatewaySettingsCommand, resolveGatewayOptions } from './gateway-settings.ts';
import { checkGatewayFiles } from './gateway-files.ts';
import { settingKeys } from './settings.ts';
import { UPSTREAM_LIST_KEYS } from './upstream-list.ts';

export type ConfigKind = 'gateway' | 'cloud';

export interface CheckedConfig {
  kind: ConfigKind;
  /** What would run: listeners, upstreams, routes, storage. */
  summary: string[];
}

/**
 * Throws the ConfigError a start would refuse with. `kind` absent: guessed from the keys (gateway unless only
 * cloud-stub keys are there). `env`: the FLEETGATE_* variables to layer over the file, none by default.
 */
export async function checkConfigFile(
  path: string,
  { kind, env = {} }: { kind?: ConfigKind; env?: NodeJS.ProcessEnv } = {},
): Promise<CheckedConfig> {
  const chosen = kind ?? guessKind(loadConfigFile(path));
  if (chosen === 'gateway') {
    const resolved = resolveGatewayOptions(['--config', path], env);
    await checkGatewayFiles(resolved);
    return { kind: chosen, summary: summarizeGateway(resolved.options) };
  }
  const resolved = resolveCloudOptions(['--config', path], env);
  (await loadCloudMaterial(resolved, false)).revocations?.close();
  return { kind: chosen, summary: summarizeCloud(resolved.options) };
}

function guessKind(file: ConfigFile): ConfigKind {
  const keys = [...file.entries.keys()];
  const gateway = new Set([...settingKeys(gatewaySettingsCommand()), ...UPSTREAM_LIST_KEYS]);
  const cloud = new Set(settingKeys(cloudServeSettingsCommand()));
  return keys.every((key) => gateway.has(key)) || !keys.every((key) => cloud.has(key)) ? 'gateway' : 'cloud';
}

function summarizeGateway(o: GatewayOptions): string[] {
  const listeners = [
    o.mqtt && `MQTT ${formatHostPort(o.mqtt)}`,
    o.mqtts && `MQTT/TLS ${formatHostPort(o.mqtts)}${o.tls?.clientAuth ? ' (mTLS)' : ''}`,
    o.deviceGrpc && `device link ${formatHostPort(o.deviceGrpc)}${o.tls ? ' (TLS)' : ''}`,
    o.admin && `admin ${formatHostPort(o.admin)}`,
  ].filter(Boolean);
  const upstreams = o.upstreams.map(
    (u) =>
      `${u.name} -> ${u.addresses.join(', ')}${u.tls ? (u.tls.certFile ? ' (mTLS)' : ' (TLS)') : ''}${u.tokenFile ? ', token' : ''}`,
  );
  const routes = o.routes.map((r) => `${r.topic} -> ${r.to.join(', ')}`);
  const limits = [
    o.journalLimits.maxBytes ? `at most ${bytes(o.journalLimits.maxBytes)}` : 'no size limit',
    o.journalLimits.maxAgeMs ? `at most ${ms(o.journalLimits.maxAgeMs)} old` : '',
    `when full ${o.journalLimits.policy}`,
  ].filter(Boolean);
  return [
    `gateway ${o.gatewayId}`,
    `listeners: ${listeners.join(', ')}`,
    `devices: ${o.allowAnonymous ? 'anonymous (no credentials)' : `tokens verified with ${o.deviceKey && 'keyFile' in o.deviceKey ? o.deviceKey.keyFile : o.deviceKey?.secretFile}`}`,
    `upstreams: ${upstreams.join('; ')}`,
    routes.length === 0
      ? 'routes: none (every record goes to every upstream)'
      : `routes (first match decides, unmatched records go to every upstream): ${routes.join('; ')}`,
    `journal: ${o.dataDir}, durability ${o.durability}, ${limits.join(', ')}`,
  ];
}

function summarizeCloud(o: CloudServeOptions): string[] {
  return [
    `listeners: gRPC ${formatHostPort(o.listen)}${o.tls ? (o.tls.clientAuth ? ' (mTLS)' : ' (TLS)') : ''}, admin ${formatHostPort(o.admin)}`,
    `gateways: ${o.gatewayKey ? `tokens verified with ${'keyFile' in o.gatewayKey ? o.gatewayKey.keyFile : o.gatewayKey.secretFile}` : 'anonymous (no tokens)'}`,
    `sink: ${o.backend ? `JetStream at ${o.backend.servers.join(', ')}` : `SQLite in ${o.dataDir}, durability ${o.durability}`}`,
  ];
}

/** 500000000 -> "500MB", 2147483648 -> "2GiB": the largest unit that divides it. */
function bytes(n: number): string {
  const units: Array<[string, number]> = [
    ['GiB', 1024 ** 3],
    ['GB', 1e9],
    ['MiB', 1024 ** 2],
    ['MB', 1e6],
    ['KiB', 1024],
    ['KB', 1e3],
  ];
  const unit = units.find(([, size]) => n % size === 0);
  return unit ? `${n / unit[1]}${unit[0]}` : `${n} bytes`;
}
