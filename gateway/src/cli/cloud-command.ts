import { Command } from 'commander';
import { createLogger, type Durability, type HostPort } from '@fleetgate/common';
import { CloudStub, exportSqliteSink } from '@fleetgate/cloud-stub';
import type { LevelWithSilent } from 'pino';
import { closeOnSignals, exitOnStartFailure } from './lifecycle.ts';
import { durabilityOption, hostPortOption, logLevelOption } from './options.ts';

export const CLOUD_DEFAULTS = {
  listen: { host: '0.0.0.0', port: 50051 },
  admin: { host: '127.0.0.1', port: 9181 },
  dataDir: './data/cloud',
};

interface ServeFlags {
  listen: HostPort;
  data: string;
  admin: HostPort;
  durability: Durability;
  logLevel: LevelWithSilent;
}

export function cloudCommand(): Command {
  const cloud = new Command('cloud').description('the reference backend (cloud-stub): receives uplink streams, dedupes, commits, acks');

  cloud
    .command('serve', { isDefault: true })
    .description('run the cloud-stub (the default: `fleetgate cloud` is `fleetgate cloud serve`)')
    .addOption(hostPortOption('--listen <host:port>', 'gRPC listener for gateways', CLOUD_DEFAULTS.listen, '0.0.0.0'))
    .option('--data <dir>', 'folder of the sink', CLOUD_DEFAULTS.dataDir)
    .addOption(hostPortOption('--admin <host:port>', 'admin HTTP listener: GET /healthz, GET /v1/stats, POST /v1/faults', CLOUD_DEFAULTS.admin))
    .addOption(durabilityOption())
    .addOption(logLevelOption())
    .action(async (flags: ServeFlags) => {
      const logger = createLogger({ name: 'cloud', level: flags.logLevel });
      let stub: CloudStub | undefined;
      closeOnSignals(async () => stub?.close(), logger);
      try {
        stub = await CloudStub.start({ listen: flags.listen, admin: flags.admin, dataDir: flags.data, durability: flags.durability, logger });
      } catch (err: unknown) {
        exitOnStartFailure(err, logger);
      }
    });

  cloud
    .command('export')
    .description('print every committed record as one JSON line, in commit order (works while the stub runs)')
    .option('--data <dir>', 'folder of the sink', CLOUD_DEFAULTS.dataDir)
    .action(async (flags: { data: string }) => {
      try {
        for (const record of exportSqliteSink(flags.data)) {
          if (!process.stdout.write(JSON.stringify(record) + '\n')) {
            await new Promise((resolve) => process.stdout.once('drain', resolve));
          }
        }
      } catch (err: unknown) {
        process.stderr.write(`fleetgate cloud export: cannot read the sink in ${flags.data}: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exitCode = 1;
      }
    });

  return cloud;
}
