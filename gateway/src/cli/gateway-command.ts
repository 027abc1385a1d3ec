import { Command, Option } from 'commander';
import { createLogger, parseHostPort, type Durability, type HostPort, type KeySource } from '@fleetgate/common';
import type { LevelWithSilent } from 'pino';
import { Gateway } from '../gateway.ts';
import { GATEWAY_DEFAULTS, type GatewayOptions } from '../options.ts';
import { closeOnSignals, exitOnStartFailure } from './lifecycle.ts';
import { defaultGatewayId, durabilityOption, hostPortOption, integerOption, logLevelOption, parseDuration, parseSize, wrap } from './options.ts';

interface GatewayFlags {
  gatewayId: string;
  mqtt: HostPort | null;
  mqtts?: HostPort | true;
  deviceGrpc: HostPort | null;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  tlsClientAuth: boolean;
  upstream: string;
  upstreamTls: boolean;
  upstreamCa?: string;
  upstreamCert?: string;
  upstreamKey?: string;
  upstreamServerName?: string;
  tokenFile?: string;
  data: string;
  admin: HostPort;
  durability: Durability;
  allowAnonymous: boolean;
  deviceKey?: string;
  deviceSecretFile?: string;
  deviceAudience: string;
  revocations?: string;
  acl?: string;
  maxPayloadBytes: number;
  maxUnackedPerConnection: number;
  maxConnections: number;
  rateLimit?: number;
  rateBurst?: number;
  journalMaxBytes: string;
  journalMaxAge: string;
  journalFull: 'drop-oldest' | 'reject-new';
  journalMaxFileBytes?: string;
  drainGraceMs: number;
  commitIntervalMs: number;
  commitMaxRows: number;
  uplinkWindow: number;
  backlogWindow: number;
  batchMaxRecords: number;
  batchMaxBytes: number;
  reconnectMaxMs: number;
  logLevel: LevelWithSilent;
}

export function gatewayCommand(): Command {
  const d = GATEWAY_DEFAULTS;
  return new Command('gateway')
    .description('run the gateway: MQTT in, SQLite journal, gRPC uplink to a backend')
    .option('--gateway-id <id>', 'this gateway\'s id at the backend', defaultGatewayId())
    .addOption(
      new Option('--mqtt <host:port|off>', 'plain MQTT listener, or off')
        .argParser(wrap((value) => (value === 'off' ? null : parseHostPort('--mqtt', value, '0.0.0.0'))))
        .default(d.mqtt, '0.0.0.0:1883'),
    )
    .addOption(
      new Option('--mqtts [host:port]', `MQTT over TLS listener (needs --tls-cert and --tls-key; port ${d.mqttsPort} if not given)`).argParser(
        wrap((value) => parseHostPort('--mqtts', value, '0.0.0.0')),
      ),
    )
    .addOption(
      new Option('--device-grpc <host:port|off>', 'device link listener (gRPC, for the device SDK); on TLS when --tls-cert is given')
        .argParser(wrap((value) => (value === 'off' ? null : parseHostPort('--device-grpc', value, '0.0.0.0'))))
        .default(d.deviceGrpc, '0.0.0.0:50052'),
    )
    .option('--tls-cert <file>', 'certificate (PEM) of the MQTT TLS listener')
    .option('--tls-key <file>', 'private key (PEM) of the MQTT TLS listener')
    .option('--tls-ca <file>', 'CA (PEM) that device certificates must chain to (with --tls-client-auth)')
    .option('--tls-client-auth', 'mTLS: devices must present a certificate signed by --tls-ca', false)
    .option('--upstream <host:port,...>', 'the backend\'s Uplink service; several (replicas of one backend): tried in turn, the next one after a failure', d.upstream)
    .option('--upstream-tls', 'TLS to the backend, trusting the system\'s CAs (implied by the --upstream-* files)', false)
    .option('--upstream-ca <file>', 'CA (PEM) the backend\'s certificate must chain to')
    .option('--upstream-cert <file>', 'client certificate (PEM) for a backend that requires mTLS')
    .option('--upstream-key <file>', 'its private key (PEM)')
    .option('--upstream-server-name <name>', 'the name the backend\'s certificate must carry, if not the --upstream host')
    .option('--token-file <file>', 'this gateway\'s token for the backend (fleetgate token issue --gateway); re-read at every connection')
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
    .addOption(integerOption('--max-unacked-per-connection <n>', 'QoS 1 PUBACKs pending on one connection before it is not read', d.maxUnackedPerConnection))
    .addOption(integerOption('--max-connections <n>', 'connected devices at most (then CONNACK 0x03)', d.maxConnections))
    .addOption(integerOption('--rate-limit <msgs/s>', 'messages per second per device; beyond it the device is slowed down, not refused', 0, 0))
    .addOption(integerOption('--rate-burst <n>', 'messages a device may send at once beyond the rate (default: the rate)', 0, 0))
    .option('--journal-max-bytes <size>', 'payload held at most by the journal, e.g. 500MB, 2GB (0: no limit)', '1GB')
    .option('--journal-max-age <duration>', 'records older than this are dropped, with a gap, e.g. 7d (0: no limit)', '0')
    .addOption(new Option('--journal-full <policy>', 'when the journal is full: drop-oldest (reported as a gap) or reject-new (devices keep their data)').choices(['drop-oldest', 'reject-new']).default('drop-oldest'))
    .option('--journal-max-file-bytes <size>', 'a hard cap on the journal file (a small disk), e.g. 100MB')
    .addOption(integerOption('--drain-grace-ms <ms>', 'on SIGTERM, how long to wait for batches in flight to be acked', d.drainGraceMs, 0))
    .addOption(integerOption('--commit-interval-ms <ms>', 'least time between two journal commits', d.groupCommit.intervalMs, 0))
    .addOption(integerOption('--commit-max-rows <n>', 'commit at once when this many messages wait', d.groupCommit.maxRows))
    .addOption(integerOption('--uplink-window <n>', 'batches sent and not yet acked, at most', d.uplink.window))
    .addOption(integerOption('--backlog-window <n>', 'of those, backlog batches (a replay after an outage), at most', d.uplink.backlogWindow))
    .addOption(integerOption('--batch-max-records <n>', 'records per uplink batch, at most', d.uplink.maxBatchRecords))
    .addOption(integerOption('--batch-max-bytes <n>', 'payload bytes per uplink batch, about', d.uplink.maxBatchBytes))
    .addOption(integerOption('--reconnect-max-ms <ms>', 'ceiling of the uplink reconnect backoff', d.uplink.reconnectMaxMs))
    .addOption(logLevelOption())
    .action(async (flags: GatewayFlags) => {
      const logger = createLogger({ name: 'gateway', level: flags.logLevel });
      // Signal handlers first: a SIGTERM that arrives while starting (or right after "gateway ready") must
      // still stop the gateway in order, not kill it with the default action.
      let gateway: Gateway | undefined;
      closeOnSignals(async () => gateway?.close(), logger);
      process.on('SIGHUP', () => gateway?.reload());
      try {
        gateway = await Gateway.start({ ...toOptions(flags), logger, logLevel: flags.logLevel });
      } catch (err: unknown) {
        exitOnStartFailure(err, logger);
      }
      gateway.on('fatal', () => process.exit(1));
    });
}

function toOptions(flags: GatewayFlags): GatewayOptions {
  const d = GATEWAY_DEFAULTS;
  const deviceKey: KeySource | undefined = flags.deviceKey
    ? { keyFile: flags.deviceKey, field: '--device-key' }
    : flags.deviceSecretFile
      ? { secretFile: flags.deviceSecretFile, field: '--device-secret-file' }
      : undefined;
  const mqtts = flags.mqtts === true ? { host: '0.0.0.0', port: d.mqttsPort } : flags.mqtts;
  const upstreamTls = flags.upstreamTls || flags.upstreamCa || flags.upstreamCert || flags.upstreamKey;
  return {
    gatewayId: flags.gatewayId,
    mqtt: flags.mqtt,
    ...(mqtts ? { mqtts } : {}),
    deviceGrpc: flags.deviceGrpc,
    ...(flags.tlsCert || flags.tlsKey
      ? { tls: { certFile: flags.tlsCert ?? '', keyFile: flags.tlsKey ?? '', clientAuth: flags.tlsClientAuth, ...(flags.tlsCa ? { caFile: flags.tlsCa } : {}) } }
      : {}),
    upstream: flags.upstream,
    ...(upstreamTls
      ? {
          upstreamTls: {
            ...(flags.upstreamCa ? { caFile: flags.upstreamCa } : {}),
            ...(flags.upstreamCert ? { certFile: flags.upstreamCert } : {}),
            ...(flags.upstreamKey ? { keyFile: flags.upstreamKey } : {}),
            ...(flags.upstreamServerName ? { serverName: flags.upstreamServerName } : {}),
          },
        }
      : {}),
    ...(flags.tokenFile ? { tokenFile: flags.tokenFile } : {}),
    dataDir: flags.data,
    admin: flags.admin,
    durability: flags.durability,
    allowAnonymous: flags.allowAnonymous,
    ...(deviceKey ? { deviceKey } : {}),
    deviceAudience: flags.deviceAudience,
    ...(flags.revocations ? { revocationsFile: flags.revocations } : {}),
    ...(flags.acl ? { aclFile: flags.acl } : {}),
    maxPayloadBytes: flags.maxPayloadBytes,
    maxUnackedPerConnection: flags.maxUnackedPerConnection,
    maxConnections: flags.maxConnections,
    ...(flags.rateLimit ? { rateLimit: { perSecond: flags.rateLimit, burst: flags.rateBurst || flags.rateLimit } } : {}),
    groupCommit: { intervalMs: flags.commitIntervalMs, maxRows: flags.commitMaxRows },
    journalLimits: {
      maxBytes: parseSize('--journal-max-bytes', flags.journalMaxBytes),
      maxAgeMs: parseDuration('--journal-max-age', flags.journalMaxAge),
      policy: flags.journalFull,
    },
    ...(flags.journalMaxFileBytes ? { maxJournalFileBytes: parseSize('--journal-max-file-bytes', flags.journalMaxFileBytes) } : {}),
    drainGraceMs: flags.drainGraceMs,
    tailCacheBytes: d.tailCacheBytes,
    uplink: {
      ...d.uplink,
      window: flags.uplinkWindow,
      backlogWindow: flags.backlogWindow,
      maxBatchRecords: flags.batchMaxRecords,
      maxBatchBytes: flags.batchMaxBytes,
      reconnectMaxMs: flags.reconnectMaxMs,
    },
  };
}
