/**
 * Every setting of `fleetgate cloud serve` (the cloud-stub): its flags, which are also FLEETGATE_* variables and
 * config file keys (settings.ts), what they resolve to, and the files a start reads (keys, certificates,
 * revocations), named after where each path was written.
 */
import { Command, Option } from 'commander';
import { ConfigError, type Durability, type HostPort } from '@fleetgate/core';
import {
  GATEWAY_AUDIENCE,
  type KeySource,
  loadTlsServer,
  loadVerifyingKey,
  type LogLevel,
  RevocationList,
  type TlsServerFiles,
  type TlsServerMaterial,
  type TokenKey,
} from '@fleetgate/common';
import type { JetStreamBackend } from '@fleetgate/cloud-stub';
import { durabilityOption, hostPortOption, integerOption, listOption, logLevelOption } from './options.ts';
import { parseFlags, Settings, withConfigFile } from './settings.ts';

export const CLOUD_DEFAULTS = {
  listen: { host: '0.0.0.0', port: 50051 },
  admin: { host: '127.0.0.1', port: 9181 },
  dataDir: './data/cloud',
  /** Batches a gateway may have in flight: enough to cover the round trip at full speed (see uplink.ts). */
  credit: 16,
};

export interface CloudServeOptions {
  listen: HostPort;
  admin: HostPort;
  dataDir: string;
  durability: Durability;
  credit: number;
  /** A JetStream sink; the SQLite sink in dataDir if absent. */
  backend?: JetStreamBackend;
  /** Tokens verified with this key; none: anonymous gateways (only with --allow-anonymous). */
  gatewayKey?: KeySource;
  gatewayAudience: string;
  revocationsFile?: string;
  tls?: TlsServerFiles;
}

export interface ResolvedCloud {
  options: CloudServeOptions;
  logLevel: LogLevel;
  settings: Settings;
}

/** --sink, --nats, --nats-replicas, --stream: where the records are (and, for jetstream, the commands). */
export function addSinkOptions(command: Command): Command {
  return command
    .addOption(
      new Option(
        '--sink <kind>',
        'where records go: sqlite (files in --data) or jetstream (a NATS JetStream cluster that replicas share)',
      )
        .choices(['sqlite', 'jetstream'])
        .default('sqlite'),
    )
    .addOption(listOption('--nats <url,...>', 'NATS servers of the JetStream cluster (with --sink jetstream)'))
    .addOption(
      integerOption(
        '--nats-replicas <n>',
        'replicas of the stream and KV buckets when they are created (default: 3 on a cluster of 3 or more, else 1)',
        undefined,
        1,
      ),
    )
    .option('--stream <name>', 'the JetStream stream (default FLEETGATE); subjects and buckets derive from it');
}

/** The JetStream backend the sink flags name, or undefined for SQLite; a ConfigError for a half-given one. */
export function jetStreamBackend(flags: {
  sink: string;
  nats?: string[];
  natsReplicas?: number;
  stream?: string;
}): JetStreamBackend | undefined {
  if (flags.sink !== 'jetstream') {
    if (flags.nats) throw new ConfigError('--nats', 'only with --sink jetstream');
    return undefined;
  }
  if (!flags.nats || flags.nats.length === 0)
    throw new ConfigError(
      '--nats',
      '--sink jetstream needs the NATS servers, e.g. --nats nats://127.0.0.1:4222,nats://127.0.0.1:4223',
    );
  for (const url of flags.nats) {
    if (!/^(nats|tls):\/\/[^\s/]+:\d{1,5}$|^[^\s/:]+:\d{1,5}$/.test(url))
      throw new ConfigError('--nats', `"${url}" is not nats://HOST:PORT`);
  }
  return {
    kind: 'jetstream',
    servers: flags.nats,
    ...(flags.natsReplicas ? { replicas: flags.natsReplicas } : {}),
    ...(flags.stream ? { stream: flags.stream } : {}),
  };
}

/** The `serve` command with all its settings and no action. */
export function cloudServeSettingsCommand(): Command {
  const command = addSinkOptions(new Command('serve'))
    .description('run the cloud-stub (the default: `fleetgate cloud` is `fleetgate cloud serve`)')
    .addOption(hostPortOption('--listen <host:port>', 'gRPC listener for gateways', CLOUD_DEFAULTS.listen, '0.0.0.0'))
    .option('--data <dir>', 'folder of the sink', CLOUD_DEFAULTS.dataDir)
    .addOption(
      hostPortOption(
        '--admin <host:port>',
        'admin HTTP listener: GET /healthz, /v1/stats, /v1/records (NDJSON), /v1/gaps; POST /v1/faults, /v1/commands',
        CLOUD_DEFAULTS.admin,
      ),
    )
    .addOption(durabilityOption())
    .option('--allow-anonymous', 'accept gateways without tokens, trusting the id in their Hello (labs only)', false)
    .option('--gateway-key <file>', 'Ed25519 public key (PEM) that verifies gateway tokens')
    .option('--gateway-secret-file <file>', 'HS256 secret that verifies gateway tokens')
    .option('--gateway-audience <aud>', 'the aud gateway tokens must carry', GATEWAY_AUDIENCE)
    .option('--revocations <file>', 'revoked tokens, one jti:<id> or sub:<id> per line; re-read on change and SIGHUP')
    .option('--tls-cert <file>', 'certificate (PEM) of the gRPC listener (TLS)')
    .option('--tls-key <file>', 'its private key (PEM)')
    .option('--tls-ca <file>', 'CA (PEM) that gateway certificates must chain to (with --tls-client-auth)')
    .option('--tls-client-auth', 'mTLS: gateways must present a certificate signed by --tls-ca', false)
    .addOption(
      integerOption(
        '--credit <batches>',
        'batches each gateway may have in flight: the first credit, topped up as they commit',
        CLOUD_DEFAULTS.credit,
      ),
    )
    .addOption(logLevelOption());
  return withConfigFile(command, '; see deploy/cloud.example.yaml');
}

/** After commander parsed `command`'s flags: environment and config file layered under them, checked. */
export function cloudFromCommand(command: Command, env: NodeJS.ProcessEnv): ResolvedCloud {
  const settings = Settings.layer(command, env);
  const s = settings;
  try {
    const backend = jetStreamBackend({
      sink: s.get('sink'),
      nats: s.get('nats'),
      natsReplicas: s.get('nats-replicas'),
      stream: s.get('stream'),
    });
    const gatewayKey: KeySource | undefined = s.get<string | undefined>('gateway-key')
      ? { keyFile: s.get('gateway-key'), field: s.field('gateway-key') }
      : s.get<string | undefined>('gateway-secret-file')
        ? { secretFile: s.get('gateway-secret-file'), field: s.field('gateway-secret-file') }
        : undefined;
    if (s.get('allow-anonymous') && gatewayKey) {
      throw new ConfigError(
        '--allow-anonymous',
        'cannot go with --gateway-key / --gateway-secret-file: choose tokens or anonymous gateways',
      );
    }
    if (!s.get('allow-anonymous') && !gatewayKey) {
      throw new ConfigError(
        '--gateway-key',
        'no gateway authentication is configured: give --gateway-key FILE (Ed25519 public key) or --gateway-secret-file FILE (HS256), or --allow-anonymous for a lab',
      );
    }
    const [tlsCert, tlsKey, tlsCa] = [
      s.get<string | undefined>('tls-cert'),
      s.get<string | undefined>('tls-key'),
      s.get<string | undefined>('tls-ca'),
    ];
    const options: CloudServeOptions = {
      listen: s.get('listen'),
      admin: s.get('admin'),
      dataDir: s.get('data'),
      durability: s.get('durability'),
      credit: s.get('credit'),
      ...(backend ? { backend } : {}),
      ...(gatewayKey ? { gatewayKey } : {}),
      gatewayAudience: s.get('gateway-audience'),
      ...(s.get<string | undefined>('revocations') ? { revocationsFile: s.get<string>('revocations') } : {}),
      ...(tlsCert || tlsKey
        ? {
            tls: {
              certFile: tlsCert ?? '',
              keyFile: tlsKey ?? '',
              clientAuth: s.get<boolean>('tls-client-auth'),
              ...(tlsCa ? { caFile: tlsCa } : {}),
            },
          }
        : {}),
    };
    return { options, logLevel: s.get('log-level'), settings };
  } catch (err: unknown) {
    throw settings.rename(err);
  }
}

/** `fleetgate cloud serve ...argv` with `env`, resolved without starting. */
export function resolveCloudOptions(argv: readonly string[], env: NodeJS.ProcessEnv = {}): ResolvedCloud {
  return cloudFromCommand(parseFlags(cloudServeSettingsCommand(), argv), env);
}

export interface CloudMaterial {
  /** Watched for changes when asked; the caller closes it. */
  revocations?: RevocationList;
  gatewayKey?: TokenKey;
  tls?: TlsServerMaterial;
}

/** Reads the files a cloud-stub starts with; a ConfigError names the setting whose file is wrong. */
export async function loadCloudMaterial({ options, settings }: ResolvedCloud, watchRevocations: boolean): Promise<CloudMaterial> {
  let revocations: RevocationList | undefined;
  try {
    revocations = options.revocationsFile
      ? new RevocationList(options.revocationsFile, settings.field('revocations'), watchRevocations)
      : undefined;
    const gatewayKey = options.gatewayKey ? await loadVerifyingKey(options.gatewayKey) : undefined;
    const tls = options.tls
      ? loadTlsServer(options.tls, {
          cert: settings.field('tls-cert'),
          key: settings.field('tls-key'),
          ca: settings.field('tls-ca'),
          clientAuth: settings.field('tls-client-auth'),
        })
      : undefined;
    return { ...(revocations ? { revocations } : {}), ...(gatewayKey ? { gatewayKey } : {}), ...(tls ? { tls } : {}) };
  } catch (err: unknown) {
    revocations?.close();
    throw settings.rename(err);
  }
}
