import { Command } from 'commander';
import ms from 'ms';
import { ConfigError, formatHostPort, type HostPort } from '@fleetgate/core';
import { createLogger, type LogLevel, TokenVerifier } from '@fleetgate/common';
import { CloudStub, exportSqliteSink, JetStreamSink, readSqliteGaps, TokenGatewayAuth } from '@fleetgate/cloud-stub';
import {
  addSinkOptions,
  CLOUD_DEFAULTS,
  cloudFromCommand,
  cloudServeSettingsCommand,
  jetStreamBackend,
  loadCloudMaterial,
  type CloudMaterial,
  type ResolvedCloud,
} from '../config/cloud-settings.ts';
import { closeOnSignals, exitOnStartFailure } from './lifecycle.ts';
import { hostPortOption } from '../config/options.ts';
import { unknownVariables } from '../config/unknown-variables.ts';

export function cloudCommand(): Command {
  const cloud = new Command('cloud').description(
    'the reference backend (cloud-stub): receives uplink streams, dedupes, commits, acks',
  );

  // `serve`'s settings (flags, FLEETGATE_* variables, --config file) are config/cloud-settings.ts.
  const serve = cloudServeSettingsCommand().action(async (flags: { logLevel: LogLevel }, command: Command) => {
    let resolved: ResolvedCloud;
    try {
      resolved = cloudFromCommand(command, process.env);
    } catch (err: unknown) {
      exitOnStartFailure(err, createLogger({ name: 'cloud', level: flags.logLevel }));
    }
    const { options } = resolved;
    const logger = createLogger({ name: 'cloud', level: resolved.logLevel });
    for (const variable of unknownVariables(process.env))
      logger.warn(variable, 'not a fleetgate setting: this environment variable is ignored');
    let stub: CloudStub | undefined;
    let material: CloudMaterial = {};
    closeOnSignals(async () => stub?.close(), logger);
    process.on('SIGHUP', () => material.revocations?.reload());
    try {
      material = await loadCloudMaterial(resolved, true);
      const { revocations, gatewayKey, tls } = material;
      const auth = gatewayKey
        ? new TokenGatewayAuth(
            new TokenVerifier({ key: gatewayKey, audience: options.gatewayAudience, ...(revocations ? { revocations } : {}) }),
          )
        : undefined;
      stub = await CloudStub.start({
        ...(options.backend ? { backend: options.backend } : {}),
        listen: options.listen,
        admin: options.admin,
        dataDir: options.dataDir,
        durability: options.durability,
        limits: { maxBatchesInFlight: options.credit },
        ...(auth ? { auth } : {}),
        ...(tls ? { tls } : {}),
        logger,
      });
    } catch (err: unknown) {
      material.revocations?.close();
      exitOnStartFailure(err, logger);
    }
  });
  cloud.addCommand(serve, { isDefault: true });

  addSinkOptions(
    cloud
      .command('export')
      .description(
        'print every committed record (or, with --gaps, every gap gateways reported) as one JSON line, in commit order (works while the stub runs)',
      )
      .option('--data <dir>', 'folder of the sink', CLOUD_DEFAULTS.dataDir)
      .option('--gaps', 'print the gaps gateways reported (records they had to let go of) instead of the records', false),
  ).action(async (flags: { data: string; gaps: boolean; sink: string; nats?: string[]; stream?: string }) => {
    let sink: JetStreamSink | undefined;
    try {
      const backend = jetStreamBackend(flags);
      if (backend)
        sink = await JetStreamSink.open({ servers: backend.servers, ...(backend.stream ? { stream: backend.stream } : {}) });
      const rows: AsyncIterable<unknown> | Iterable<unknown> = sink
        ? flags.gaps
          ? await sink.exportGaps()
          : sink.exportRecords()
        : flags.gaps
          ? readSqliteGaps(flags.data)
          : exportSqliteSink(flags.data);
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
    .description("send a command to a device through the cloud-stub's admin API; with --wait, print its result")
    .requiredOption('--device <id>', 'the device')
    .requiredOption('--name <name>', 'the command, e.g. reboot')
    .option('--payload <json>', 'its payload, as JSON', 'null')
    .option('--ttl <duration>', 'how long it may wait for the device, e.g. 60s, 10m', '60s')
    .option('--wait', 'wait for the final status and print it (exit 0 only if it succeeded)', false)
    .addOption(hostPortOption('--admin <host:port>', "the cloud-stub's admin listener", CLOUD_DEFAULTS.admin))
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
