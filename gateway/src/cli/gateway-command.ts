import { Command } from 'commander';
import { createLogger, type Durability, type HostPort } from '@fleetgate/common';
import type { LevelWithSilent } from 'pino';
import { Gateway } from '../gateway.ts';
import { GATEWAY_DEFAULTS } from '../options.ts';
import { closeOnSignals, exitOnStartFailure } from './lifecycle.ts';
import { defaultGatewayId, durabilityOption, hostPortOption, integerOption, logLevelOption } from './options.ts';

interface GatewayFlags {
  gatewayId: string;
  mqtt: HostPort;
  upstream: string;
  data: string;
  admin: HostPort;
  durability: Durability;
  allowAnonymous: boolean;
  maxPayloadBytes: number;
  commitIntervalMs: number;
  commitMaxRows: number;
  uplinkWindow: number;
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
    .addOption(hostPortOption('--mqtt <host:port>', 'MQTT listener', d.mqtt, '0.0.0.0'))
    .option('--upstream <host:port>', 'the backend\'s Uplink service', d.upstream)
    .option('--data <dir>', 'folder of the journal', d.dataDir)
    .addOption(hostPortOption('--admin <host:port>', 'admin HTTP listener: GET /healthz, GET /v1/stats', d.admin))
    .addOption(durabilityOption())
    .option('--allow-anonymous', 'accept devices without credentials; the MQTT client id is the device id (labs only)', false)
    .addOption(integerOption('--max-payload-bytes <n>', 'larger publishes are refused', d.maxPayloadBytes))
    .addOption(integerOption('--commit-interval-ms <ms>', 'least time between two journal commits', d.groupCommit.intervalMs, 0))
    .addOption(integerOption('--commit-max-rows <n>', 'commit at once when this many messages wait', d.groupCommit.maxRows))
    .addOption(integerOption('--uplink-window <n>', 'batches sent and not yet acked, at most', d.uplink.window))
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
      try {
        gateway = await Gateway.start({
          gatewayId: flags.gatewayId,
          mqtt: flags.mqtt,
          upstream: flags.upstream,
          dataDir: flags.data,
          admin: flags.admin,
          durability: flags.durability,
          allowAnonymous: flags.allowAnonymous,
          maxPayloadBytes: flags.maxPayloadBytes,
          maxUnackedPerConnection: d.maxUnackedPerConnection,
          groupCommit: { intervalMs: flags.commitIntervalMs, maxRows: flags.commitMaxRows },
          tailCacheBytes: d.tailCacheBytes,
          uplink: {
            ...d.uplink,
            window: flags.uplinkWindow,
            maxBatchRecords: flags.batchMaxRecords,
            maxBatchBytes: flags.batchMaxBytes,
            reconnectMaxMs: flags.reconnectMaxMs,
          },
          logger,
          logLevel: flags.logLevel,
        });
      } catch (err: unknown) {
        exitOnStartFailure(err, logger);
      }
      gateway.on('fatal', () => process.exit(1));
    });
}
