import { Command, Option } from 'commander';
import ms from 'ms';
import {
  ConfigError,
  createLogger,
  formatHostPort,
  GATEWAY_AUDIENCE,
  loadTlsServer,
  loadVerifyingKey,
  RevocationList,
  TokenVerifier,
  type Durability,
  type HostPort,
} from '@fleetgate/common';
import { CloudStub, exportSqliteSink, JetStreamSink, readSqliteGaps, TokenGatewayAuth, type GatewayAuth, type JetStreamBackend } from '@fleetgate/cloud-stub';
import type { LevelWithSilent } from 'pino';
import { closeOnSignals, exitOnStartFailure } from './lifecycle.ts';
import { durabilityOption, hostPortOption, integerOption, logLevelOption } from './options.ts';

export const CLOUD_DEFAULTS = {
  listen: { host: '0.0.0.0', port: 50051 },
  admin: { host: '127.0.0.1', port: 9181 },
  dataDir: './data/cloud',
  /** Batches a gateway may have in flight: enough to cover the round trip at full speed (see uplink.ts). */
  credit: 16,
};

interface ServeFlags {
  credit: number;
  listen: HostPort;
  data: string;
  admin: HostPort;
  durability: Durability;
  allowAnonymous: boolean;
  gatewayKey?: string;
  gatewaySecretFile?: string;
  gatewayAudience: string;
  revocations?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  tlsClientAuth: boolean;
  logLevel: LevelWithSilent;
  sink: 'sqlite' | 'jetstream';
  nats?: string[];
  natsReplicas?: number;
  stream?: string;
}

/** --sink, --nats, --nats-replicas, --stream: where the records are (and, for jetstream, the commands). */
function addSinkOptions(command: Command): Command {
  return command
    .addOption(new Option('--sink <kind>', 'where records go: sqlite (files in --data) or jetstream (a NATS JetStream cluster that replicas share)').choices(['sqlite', 'jetstream']).default('sqlite'))
    .addOption(new Option('--nats <url,...>', 'NATS servers of the JetStream cluster (with --sink jetstream)').argParser((value: string) => value.split(',').map((url) => url.trim()).filter(Boolean)))
    .addOption(integerOption('--nats-replicas <n>', 'replicas of the stream and KV buckets when they are created (default: 3 on a cluster of 3 or more, else 1)', undefined, 1))
    .option('--stream <name>', 'the JetStream stream (default FLEETGATE); subjects and buckets derive from it');
}

function jetStreamBackend(flags: { sink: string; nats?: string[]; natsReplicas?: number; stream?: string }): JetStreamBackend | undefined {
  if (flags.sink !== 'jetstream') {
    if (flags.nats) throw new ConfigError('--nats', 'only with --sink jetstream');
    return undefined;
  }
  if (!flags.nats || flags.nats.length === 0) throw new ConfigError('--nats', '--sink jetstream needs the NATS servers, e.g. --nats nats://127.0.0.1:4222,nats://127.0.0.1:4223');
  for (const url of flags.nats) {
    if (!/^(nats|tls):\/\/[^\s/]+:\d{1,5}$|^[^\s/:]+:\d{1,5}$/.test(url)) throw new ConfigError('--nats', `"${url}" is not nats://HOST:PORT`);
  }
  return { kind: 'jetstream', servers: flags.nats, ...(flags.natsReplicas ? { replicas: flags.natsReplicas } : {}), ...(flags.stream ? { stream: flags.stream } : {}) };
}

export function cloudCommand(): Command {
  const cloud = new Command('cloud').description('the reference backend (cloud-stub): receives uplink streams, dedupes, commits, acks');

  addSinkOptions(cloud
    .command('serve', { isDefault: true }))
    .description('run the cloud-stub (the default: `fleetgate cloud` is `fleetgate cloud serve`)')
    .addOption(hostPortOption('--listen <host:port>', 'gRPC listener for gateways', CLOUD_DEFAULTS.listen, '0.0.0.0'))
    .option('--data <dir>', 'folder of the sink', CLOUD_DEFAULTS.dataDir)
    .addOption(hostPortOption('--admin <host:port>', 'admin HTTP listener: GET /healthz, /v1/stats, /v1/records (NDJSON), /v1/gaps; POST /v1/faults, /v1/commands', CLOUD_DEFAULTS.admin))
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
    .addOption(integerOption('--credit <batches>', 'batches each gateway may have in flight: the first credit, topped up as they commit', CLOUD_DEFAULTS.credit))
    .addOption(logLevelOption())
    .action(async (flags: ServeFlags) => {
      const logger = createLogger({ name: 'cloud', level: flags.logLevel });
      let stub: CloudStub | undefined;
      let revocations: RevocationList | undefined;
      closeOnSignals(async () => stub?.close(), logger);
      process.on('SIGHUP', () => revocations?.reload());
      try {
        revocations = flags.revocations ? new RevocationList(flags.revocations) : undefined;
        const auth = await gatewayAuth(flags, revocations);
        const tls = flags.tlsCert || flags.tlsKey
          ? loadTlsServer(
              { certFile: flags.tlsCert ?? '', keyFile: flags.tlsKey ?? '', clientAuth: flags.tlsClientAuth, ...(flags.tlsCa ? { caFile: flags.tlsCa } : {}) },
              { cert: '--tls-cert', key: '--tls-key', ca: '--tls-ca', clientAuth: '--tls-client-auth' },
            )
          : undefined;
        const backend = jetStreamBackend(flags);
        stub = await CloudStub.start({
          ...(backend ? { backend } : {}),
          listen: flags.listen,
          admin: flags.admin,
          dataDir: flags.data,
          durability: flags.durability,
          limits: { maxBatchesInFlight: flags.credit },
          ...(auth ? { auth } : {}),
          ...(tls ? { tls } : {}),
          logger,
        });
      } catch (err: unknown) {
        revocations?.close();
        exitOnStartFailure(err, logger);
      }
    });

  addSinkOptions(cloud
    .command('export')
    .description('print every committed record (or, with --gaps, every gap gateways reported) as one JSON line, in commit order (works while the stub runs)')
    .option('--data <dir>', 'folder of the sink', CLOUD_DEFAULTS.dataDir)
    .option('--gaps', 'print the gaps gateways reported (records they had to let go of) instead of the records', false))
    .action(async (flags: { data: string; gaps: boolean; sink: string; nats?: string[]; stream?: string }) => {
      let sink: JetStreamSink | undefined;
      try {
        const backend = jetStreamBackend(flags);
        if (backend) sink = await JetStreamSink.open({ servers: backend.servers, ...(backend.stream ? { stream: backend.stream } : {}) });
        const rows: AsyncIterable<unknown> | Iterable<unknown> = sink
          ? flags.gaps ? await sink.exportGaps() : sink.exportRecords()
          : flags.gaps ? readSqliteGaps(flags.data) : exportSqliteSink(flags.data);
        for await (const record of rows) {
          if (!process.stdout.write(JSON.stringify(record) + '\n')) {
            await new Promise((resolve) => process.stdout.once('drain', resolve));
          }
        }
      } catch (err: unknown) {
        const where = flags.sink === 'jetstream' ? `the stream at ${flags.nats?.join(',')}` : `the sink in ${flags.data}`;
        process.stderr.write(`fleetgate cloud export: cannot read ${where}: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exitCode = err instanceof ConfigError ? 2 : 1;
      } finally {
        await sink?.close();
      }
    });

  cloud
    .command('command')
    .description('send a command to a device through the cloud-stub\'s admin API; with --wait, print its result')
    .requiredOption('--device <id>', 'the device')
    .requiredOption('--name <name>', 'the command, e.g. reboot')
    .option('--payload <json>', 'its payload, as JSON', 'null')
    .option('--ttl <duration>', 'how long it may wait for the device, e.g. 60s, 10m', '60s')
    .option('--wait', 'wait for the final status and print it (exit 0 only if it succeeded)', false)
    .addOption(hostPortOption('--admin <host:port>', 'the cloud-stub\'s admin listener', CLOUD_DEFAULTS.admin))
    .action(async (flags: { device: string; name: string; payload: string; ttl: string; wait: boolean; admin: HostPort }) => {
      const fail = (message: string): never => {
        process.stderr.write(`fleetgate cloud command: ${message}\n`);
        process.exit(1);
      };
      let payload: unknown;
      try {
        payload = JSON.parse(flags.payload);
      } catch {
        fail(`--payload: ${JSON.stringify(flags.payload)} is not JSON`);
      }
      const ttlMs = ms(flags.ttl as ms.StringValue);
      if (typeof ttlMs !== 'number' || !(ttlMs >= 1)) fail(`--ttl: "${flags.ttl}" is not a duration (like 60s, 10m)`);
      const admin = `http://${formatHostPort(flags.admin)}`;
      const created = await fetch(`${admin}/v1/commands`, {
        method: 'POST',
        body: JSON.stringify({ deviceId: flags.device, name: flags.name, payload, ttlMs }),
      }).catch((err: unknown) => fail(`cannot reach ${admin}: ${(err as Error).message}`));
      const command = (await created.json()) as { commandId?: string; error?: string; status?: string };
      if (!created.ok || !command.commandId) fail(command.error ?? `HTTP ${created.status}`);
      if (!flags.wait) {
        process.stdout.write(JSON.stringify(command, null, 2) + '\n');
        return;
      }
      const final = new Set(['succeeded', 'failed', 'expired', 'rejected']);
      let current = command;
      while (!final.has(current.status ?? '')) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        current = (await (await fetch(`${admin}/v1/commands/${command.commandId}`)).json()) as typeof command;
      }
      process.stdout.write(JSON.stringify(current, null, 2) + '\n');
      process.exitCode = current.status === 'succeeded' ? 0 : 2;
    });

  return cloud;
}

/** Tokens unless --allow-anonymous; neither is a refusal to start, both a contradiction. */
async function gatewayAuth(flags: ServeFlags, revocations: RevocationList | undefined): Promise<GatewayAuth | undefined> {
  const source = flags.gatewayKey
    ? { keyFile: flags.gatewayKey, field: '--gateway-key' }
    : flags.gatewaySecretFile
      ? { secretFile: flags.gatewaySecretFile, field: '--gateway-secret-file' }
      : undefined;
  if (flags.allowAnonymous && source) {
    throw new ConfigError('--allow-anonymous', 'cannot go with --gateway-key / --gateway-secret-file: choose tokens or anonymous gateways');
  }
  if (flags.allowAnonymous) return undefined;
  if (!source) {
    throw new ConfigError(
      '--gateway-key',
      'no gateway authentication is configured: give --gateway-key FILE (Ed25519 public key) or --gateway-secret-file FILE (HS256), or --allow-anonymous for a lab',
    );
  }
  const key = await loadVerifyingKey(source);
  return new TokenGatewayAuth(new TokenVerifier({ key, audience: flags.gatewayAudience, ...(revocations ? { revocations } : {}) }));
}
