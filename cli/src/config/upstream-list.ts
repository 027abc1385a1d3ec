/**
 * The gateway's upstreams and routes. A config file can list several upstreams, each with its own addresses, TLS
 * and token, and routes that send records to some of them:
 *
 *   upstreams:
 *     - name: alarms
 *       address: alarms-1.example.net:50051,alarms-2.example.net:50051
 *       tls: { ca: tls/alarms-ca.pem }
 *       token-file: tokens/alarms.token
 *   routes:
 *     - topic: devices/+/telemetry/alarms/#
 *       to: alarms
 *
 * Without `upstreams:`, or when --upstream / FLEETGATE_UPSTREAM is given (which replaces the file's upstreams and
 * routes), the gateway has one upstream named "default" made of --upstream and its --upstream-* and --token-file.
 * Names, addresses and routes are checked by validateGatewayOptions; this reads their shape.
 */
import { ConfigError } from '@fleetgate/core';
import {
  DEFAULT_UPSTREAM_NAME,
  GATEWAY_DEFAULTS,
  type GatewayOptions,
  type RouteOptions,
  type UpstreamOptions,
} from '@fleetgate/gateway';
import { pathInFile, show, unknownKey, type ConfigFile } from './config-file.ts';
import type { Settings } from './settings.ts';

/** The keys a gateway's config file has besides its flags. */
export const UPSTREAM_LIST_KEYS = ['upstreams', 'routes'] as const;

/** The settings of the one upstream a gateway has without `upstreams:` in its file. */
const SINGLE_UPSTREAM = [
  'upstream',
  'upstream-tls',
  'upstream-ca',
  'upstream-cert',
  'upstream-key',
  'upstream-server-name',
  'token-file',
];

const UPSTREAM_KEYS = ['name', 'address', 'tls', 'token-file'];
const TLS_KEYS = ['ca', 'cert', 'key', 'server-name'];
const ROUTE_KEYS = ['topic', 'to'];

/** Whether the upstreams come from the file's `upstreams:` list (else: the single upstream of the flags). */
export function upstreamsFromFile(settings: Settings): boolean {
  return settings.file?.entries.get('upstreams') != null && !settings.given('upstream');
}

export function upstreamsAndRoutes(settings: Settings): Pick<GatewayOptions, 'upstreams' | 'routes'> {
  const file = settings.file;
  const given = SINGLE_UPSTREAM.filter((key) => settings.given(key));
  if (file && file.entries.get('upstreams') != null) {
    const inFile = given.find((key) => settings.source(key) === 'config');
    if (inFile)
      throw new ConfigError(
        settings.field(inFile),
        'cannot go with upstreams: in the same file: set address, tls and token-file per upstream there',
      );
    if (upstreamsFromFile(settings)) {
      const other = given[0];
      if (other) {
        throw new ConfigError(
          settings.field(other),
          `belongs to --upstream, which is not given, and ${file.path} has upstreams: set it per upstream in the file, or give --upstream too (which replaces the file's upstreams and routes)`,
        );
      }
      return { upstreams: readUpstreams(file), routes: readRoutes(file) };
    }
    // --upstream (a flag or a variable) replaces the file's upstreams; the file's routes name those, so they go too.
    return { upstreams: [singleUpstream(settings)], routes: [] };
  }
  return { upstreams: [singleUpstream(settings)], routes: file?.entries.get('routes') != null ? readRoutes(file) : [] };
}

function singleUpstream(settings: Settings): UpstreamOptions {
  const address = settings.get<string | undefined>('upstream');
  const ca = settings.get<string | undefined>('upstream-ca');
  const cert = settings.get<string | undefined>('upstream-cert');
  const key = settings.get<string | undefined>('upstream-key');
  const serverName = settings.get<string | undefined>('upstream-server-name');
  const tokenFile = settings.get<string | undefined>('token-file');
  const tls = settings.get<boolean>('upstream-tls') || ca || cert || key;
  return {
    name: DEFAULT_UPSTREAM_NAME,
    addresses:
      address !== undefined ? address.split(',').map((item) => item.trim()) : [...GATEWAY_DEFAULTS.upstreams[0]!.addresses],
    ...(tls
      ? {
          tls: {
            ...(ca ? { caFile: ca } : {}),
            ...(cert ? { certFile: cert } : {}),
            ...(key ? { keyFile: key } : {}),
            ...(serverName ? { serverName } : {}),
          },
        }
      : {}),
    ...(tokenFile ? { tokenFile } : {}),
  };
}

/** `upstreams:` of the file. Fields are "upstreams[i]...."; the caller prefixes the file. */
function readUpstreams(file: ConfigFile): UpstreamOptions[] {
  return list(file.entries.get('upstreams'), 'upstreams', 'upstreams (- name: NAME, address: HOST:PORT)').map((item, i) => {
    const field = `upstreams[${i}]`;
    const entry = mapping(item, field, UPSTREAM_KEYS, 'an upstream (name, address, tls, token-file)');
    if (entry.name == null)
      throw new ConfigError(`${field}.name`, 'missing: every upstream has a name (routes, stats and the journal use it)');
    const tls = readTls(entry.tls, `${field}.tls`, file);
    const tokenFile =
      entry['token-file'] == null ? undefined : pathInFile(file, text(entry['token-file'], `${field}.token-file`));
    return {
      name: text(entry.name, `${field}.name`),
      addresses: names(entry.address, `${field}.address`),
      ...(tls ? { tls } : {}),
      ...(tokenFile ? { tokenFile } : {}),
    };
  });
}

/** `tls: true` (the system's CAs), or `tls: { ca, cert, key, server-name }`; absent or false: plain. */
function readTls(value: unknown, field: string, file: ConfigFile): UpstreamOptions['tls'] {
  if (value == null || value === false) return undefined;
  if (value === true) return {};
  const entry = mapping(value, field, TLS_KEYS, 'true, or a mapping of ca, cert, key, server-name');
  const path = (key: string) => (entry[key] == null ? undefined : pathInFile(file, text(entry[key], `${field}.${key}`)));
  const [caFile, certFile, keyFile] = [path('ca'), path('cert'), path('key')];
  const serverName = entry['server-name'] == null ? undefined : text(entry['server-name'], `${field}.server-name`);
  return {
    ...(caFile ? { caFile } : {}),
    ...(certFile ? { certFile } : {}),
    ...(keyFile ? { keyFile } : {}),
    ...(serverName ? { serverName } : {}),
  };
}

function readRoutes(file: ConfigFile): RouteOptions[] {
  if (file.entries.get('routes') == null) return [];
  return list(file.entries.get('routes'), 'routes', 'routes (- topic: FILTER, to: UPSTREAM)').map((item, i) => {
    const field = `routes[${i}]`;
    const entry = mapping(item, field, ROUTE_KEYS, 'a route (topic, to)');
    if (entry.topic == null)
      throw new ConfigError(
        `${field}.topic`,
        'missing: the MQTT topic filter the route matches, like devices/+/telemetry/alarms/#',
      );
    return { topic: text(entry.topic, `${field}.topic`), to: names(entry.to, `${field}.to`) };
  });
}

function list(value: unknown, field: string, expected: string): unknown[] {
  if (!Array.isArray(value)) throw new ConfigError(field, `${show(value)} is not a list of ${expected}`);
  return value;
}

function mapping(value: unknown, field: string, keys: readonly string[], expected: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new ConfigError(field, `${show(value)} is not ${expected}`);
  const entry = value as Record<string, unknown>;
  for (const key of Object.keys(entry)) {
    if (!keys.includes(key)) throw unknownKey(`${field}.${key}`, key, keys);
  }
  return entry;
}

function text(value: unknown, field: string): string {
  if (typeof value !== 'string') throw new ConfigError(field, `${show(value)} is not text`);
  return value;
}

/** One name or address, "a,b", or a list of them. */
function names(value: unknown, field: string): string[] {
  if (value == null) return [];
  const items = Array.isArray(value) ? value : [value];
  return items.flatMap((item, i) =>
    text(item, Array.isArray(value) ? `${field}[${i}]` : field)
      .split(',')
      .map((part) => part.trim()),
  );
}
