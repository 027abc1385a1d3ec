/**
 * Every setting of `fleetgate gateway`: its flags (which are also its FLEETGATE_* variables and its config file
 * keys, see settings.ts), and how they become GatewayOptions. Nothing here opens a socket or reads a file other
 * than the config file, so a test resolves options from argv and an environment without starting anything.
 */
import { Command, Option } from 'commander';
import { type HostPort, parseHostPort } from '@fleetgate/core';
import type { KeySource, LogLevel } from '@fleetgate/common';
import { GATEWAY_DEFAULTS, validateGatewayOptions, type GatewayOptions } from '@fleetgate/gateway';
import {
  defaultGatewayId,
  durabilityOption,
  durationOption,
  hostPortOption,
  integerOption,
  listOption,
  logLevelOption,
  sizeOption,
  wrap,
} from './options.ts';
import { parseFlags, Settings, withConfigFile } from './settings.ts';
import { UPSTREAM_LIST_KEYS, upstreamsAndRoutes } from './upstream-list.ts';

export interface ResolvedGateway {
  options: GatewayOptions;
  logLevel: LogLevel;
  /** Where each setting came from, to name it in later refusals (files that cannot be read). */
  settings: Settings;
}

/** The `gateway` command with all its settings and no action (the CLI adds the one that starts it). */
export function gatewaySettingsCommand(): Command {
  const d = GATEWAY_DEFAULTS;
  const command = new Command('gateway')
    .description('run the gateway: MQTT in, SQLite journal, gRPC uplink to one or more backends')
    .option('--gateway-id <id>', "this gateway's id at the backend", defaultGatewayId())
    .addOption(
      new Option('--mqtt <host:port|off>', 'plain MQTT listener, or off')
        .argParser(wrap((value) => (value === 'off' ? null : parseHostPort('--mqtt', value, '0.0.0.0'))))
        .default(d.mqtt, '0.0.0.0:1883'),
    )
    .addOption(
      new Option(
        '--mqtts [host:port]',
        `MQTT over TLS listener (needs --tls-cert and --tls-key; port ${d.mqttsPort} if not given)`,
      ).argParser(wrap((value) => parseHostPort('--mqtts', value, '0.0.0.0'))),
    )
    .addOption(
      new Option('--ws <host:port>', 'MQTT over WebSockets listener (HTTP, path /mqtt)').argParser(
        wrap((value) => parseHostPort('--ws', value, '0.0.0.0')),
      ),
    )
    .addOption(
      new Option(
        '--wss <host:port>',
        'MQTT over secure WebSockets listener (HTTPS with --tls-cert and --tls-key, path /mqtt)',
      ).argParser(wrap((value) => parseHostPort('--wss', value, '0.0.0.0'))),
    )
    .addOption(
      new Option(
        '--device-grpc <host:port|off>',
        'device link listener (gRPC, for the device SDK); on TLS when --tls-cert is given',
      )
        .argParser(wrap((value) => (value === 'off' ? null : parseHostPort('--device-grpc', value, '0.0.0.0'))))
        .default(d.deviceGrpc, '0.0.0.0:50052'),
    )
    .option('--tls-cert <file>', 'certificate (PEM) of the MQTT TLS listener')
    .option('--tls-key <file>', 'private key (PEM) of the MQTT TLS listener')
    .option('--tls-ca <file>', 'CA (PEM) that device certificates must chain to (with --tls-client-auth)')
    .option('--tls-client-auth', 'mTLS: devices must present a certificate signed by --tls-ca', false)
    .option(
      '--upstream <host:port,...>',
      `the backend's Uplink service (default ${d.upstreams[0]!.addresses.join(',')}); several (replicas of one backend): tried in turn. ` +
        'Given as a flag or variable, it replaces the config file\'s upstreams: and routes: with this one upstream, named "default"',
    )
    .option('--upstream-tls', "TLS to the backend, trusting the system's CAs (implied by the --upstream-* files)", false)
    .option('--upstream-ca <file>', "CA (PEM) the backend's certificate must chain to")
    .option('--upstream-cert <file>', 'client certificate (PEM) for a backend that requires mTLS')
    .option('--upstream-key <file>', 'its private key (PEM)')
    .option('--upstream-server-name <name>', "the name the backend's certificate must carry, if not the --upstream host")
    .option(
      '--token-file <file>',
      "this gateway's token for the backend (fleetgate token issue --gateway); re-read at every connection",
    )
    .addOption(
      listOption(
        '--forget-upstreams <name,...>',
        'upstreams no longer configured whose unacknowledged journal rows may be let go of (else such rows refuse a start)',
      ),
    )
    .option('--data <dir>', 'folder of the journal', d.dataDir)
    .addOption(hostPortOption('--admin <host:port>', 'admin HTTP listener: GET /healthz, GET /v1/stats', d.admin))
    .addOption(durabilityOption())
    .option('--allow-anonymous', 'accept devices without credentials; the MQTT client id is the device id (labs only)', false)
    .option('--device-key <file>', 'Ed25519 public key (PEM) that verifies device tokens')
    .option('--device-secret-file <file>', 'HS256 secret that verifies device tokens')
    .option('--device-audience <aud>', 'the aud device tokens must carry', d.deviceAudience)
    .option('--revocations <file>', 'revoked tokens, one jti:<id> or sub:<id> per line; re-read on change and SIGHUP')
    .option('--acl <file>', 'ACL rules (YAML); re-read on SIGHUP. Default: each device under devices/{its id}/ only')
    .addOption(integerOption('--max-payload-bytes <n>', 'larger publishes are refused', d.maxPayloadBytes))
    .addOption(
      integerOption(
        '--max-unacked-per-connection <n>',
        'QoS 1 PUBACKs pending on one connection before it is not read',
        d.maxUnackedPerConnection,
      ),
    )
    .addOption(integerOption('--max-connections <n>', 'connected devices at most (then CONNACK 0x03)', d.maxConnections))
    .addOption(
      durationOption(
        '--max-session-expiry <duration>',
        'longest an MQTT session outlives its connection (MQTT 5 session expiry is lowered to it; 3.1.1 clean session 0 expires after it)',
        d.maxSessionExpiryMs,
        '1d',
      ),
    )
    .addOption(
      integerOption(
        '--rate-limit <msgs/s>',
        'messages per second per device; beyond it the device is slowed down, not refused (0: no limit)',
        0,
        0,
      ),
    )
    .addOption(integerOption('--rate-burst <n>', 'messages a device may send at once beyond the rate (0: the rate)', 0, 0))
    .addOption(
      sizeOption('--journal-max-bytes <size>', 'payload held at most by the journal, e.g. 500MB, 2GiB (0: no limit)', 1e9, '1GB'),
    )
    .addOption(
      durationOption(
        '--journal-max-age <duration>',
        'records older than this are dropped, with a gap, e.g. 7d (0: no limit)',
        0,
        '0',
      ),
    )
    .addOption(
      new Option(
        '--journal-full <policy>',
        'when the journal is full: drop-oldest (reported as a gap) or reject-new (devices keep their data)',
      )
        .choices(['drop-oldest', 'reject-new'])
        .default(d.journalLimits.policy),
    )
    .addOption(
      sizeOption('--journal-max-file-bytes <size>', 'a hard cap on the journal file (a small disk), e.g. 100MB (default: none)'),
    )
    .addOption(
      sizeOption(
        '--tail-cache-size <size>',
        'memory for the newest committed records, so that the uplink sends them without reading them back; shared by the upstreams (e.g. 4MiB on a small Pi)',
        d.tailCacheBytes,
        '16MiB',
      ),
    )
    .addOption(
      integerOption('--drain-grace-ms <ms>', 'on SIGTERM, how long to wait for batches in flight to be acked', d.drainGraceMs, 0),
    )
    .addOption(integerOption('--commit-interval-ms <ms>', 'least time between two journal commits', d.groupCommit.intervalMs, 0))
    .addOption(integerOption('--commit-max-rows <n>', 'commit at once when this many messages wait', d.groupCommit.maxRows))
    .addOption(integerOption('--uplink-window <n>', 'batches sent and not yet acked, at most', d.uplink.window))
    .addOption(
      integerOption(
        '--backlog-window <n>',
        'of those, backlog batches (a replay after an outage), at most',
        d.uplink.backlogWindow,
      ),
    )
    .addOption(integerOption('--batch-max-records <n>', 'records per uplink batch, at most', d.uplink.maxBatchRecords))
    .addOption(integerOption('--batch-max-bytes <n>', 'payload bytes per uplink batch, about', d.uplink.maxBatchBytes))
    .addOption(integerOption('--reconnect-max-ms <ms>', 'ceiling of the uplink reconnect backoff', d.uplink.reconnectMaxMs))
    .addOption(
      integerOption(
        '--uplink-dead-after-ms <ms>',
        'a backend that sent nothing for this long is given up and reconnected (it is asked with a heartbeat after half); ' +
          'backends that answer heartbeats only. Longer than one batch takes over the slowest link',
        d.uplink.deadAfterMs,
        2,
      ),
    )
    .addOption(logLevelOption());
  return withConfigFile(command, ', and the lists upstreams: and routes:; see deploy/gateway.example.yaml');
}

/**
 * After commander parsed `command`'s flags: the environment and the config file layered under them, turned into
 * GatewayOptions and validated. Refusals name the flag, variable or "file: key" the value came from.
 */
export function gatewayFromCommand(command: Command, env: NodeJS.ProcessEnv): ResolvedGateway {
  const settings = Settings.layer(command, env, UPSTREAM_LIST_KEYS);
  try {
    const options = toGatewayOptions(settings);
    validateGatewayOptions(options);
    return { options, logLevel: settings.get('log-level'), settings };
  } catch (err: unknown) {
    throw settings.rename(err);
  }
}

/** `fleetgate gateway ...argv` with `env`, resolved without starting: a CommanderError for a bad flag, else a ConfigError. */
export function resolveGatewayOptions(argv: readonly string[], env: NodeJS.ProcessEnv = {}): ResolvedGateway {
  return gatewayFromCommand(parseFlags(gatewaySettingsCommand(), argv), env);
}

function toGatewayOptions(s: Settings): GatewayOptions {
  const d = GATEWAY_DEFAULTS;
  const deviceKey: KeySource | undefined = s.get<string | undefined>('device-key')
    ? { keyFile: s.get('device-key'), field: s.field('device-key') }
    : s.get<string | undefined>('device-secret-file')
      ? { secretFile: s.get('device-secret-file'), field: s.field('device-secret-file') }
      : undefined;
  const mqttsFlag = s.get<HostPort | true | undefined>('mqtts');
  const mqtts = mqttsFlag === true ? { host: '0.0.0.0', port: d.mqttsPort } : mqttsFlag;
  const [tlsCert, tlsKey, tlsCa] = [
    s.get<string | undefined>('tls-cert'),
    s.get<string | undefined>('tls-key'),
    s.get<string | undefined>('tls-ca'),
  ];
  const rateLimit = s.get<number>('rate-limit');
  const maxFileBytes = s.get<number | undefined>('journal-max-file-bytes');
  return {
    gatewayId: s.get('gateway-id'),
    mqtt: s.get('mqtt'),
    ...(mqtts ? { mqtts } : {}),
    ...(s.get<HostPort | undefined>('ws') ? { ws: s.get<HostPort>('ws') } : {}),
    ...(s.get<HostPort | undefined>('wss') ? { wss: s.get<HostPort>('wss') } : {}),
    deviceGrpc: s.get('device-grpc'),
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
    ...upstreamsAndRoutes(s),
    forgetUpstreams: s.get<string[] | undefined>('forget-upstreams') ?? [...d.forgetUpstreams],
    dataDir: s.get('data'),
    admin: s.get('admin'),
    durability: s.get('durability'),
    allowAnonymous: s.get('allow-anonymous'),
    ...(deviceKey ? { deviceKey } : {}),
    deviceAudience: s.get('device-audience'),
    ...(s.get<string | undefined>('revocations') ? { revocationsFile: s.get<string>('revocations') } : {}),
    ...(s.get<string | undefined>('acl') ? { aclFile: s.get<string>('acl') } : {}),
    maxPayloadBytes: s.get('max-payload-bytes'),
    maxUnackedPerConnection: s.get('max-unacked-per-connection'),
    maxConnections: s.get('max-connections'),
    maxSessionExpiryMs: s.get('max-session-expiry'),
    ...(rateLimit ? { rateLimit: { perSecond: rateLimit, burst: s.get<number>('rate-burst') || rateLimit } } : {}),
    groupCommit: { intervalMs: s.get('commit-interval-ms'), maxRows: s.get('commit-max-rows') },
    journalLimits: { maxBytes: s.get('journal-max-bytes'), maxAgeMs: s.get('journal-max-age'), policy: s.get('journal-full') },
    ...(maxFileBytes ? { maxJournalFileBytes: maxFileBytes } : {}),
    drainGraceMs: s.get('drain-grace-ms'),
    tailCacheBytes: s.get('tail-cache-size'),
    uplink: {
      ...d.uplink,
      window: s.get('uplink-window'),
      backlogWindow: s.get('backlog-window'),
      maxBatchRecords: s.get('batch-max-records'),
      maxBatchBytes: s.get('batch-max-bytes'),
      reconnectMaxMs: s.get('reconnect-max-ms'),
      deadAfterMs: s.get('uplink-dead-after-ms'),
    },
  };
}
