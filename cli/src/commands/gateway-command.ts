import type { Command } from 'commander';
import { createLogger, type LogLevel } from '@fleetgate/common';
import { checkGatewayFiles } from '../config/gateway-files.ts';
import { gatewayFromCommand, gatewaySettingsCommand, type ResolvedGateway } from '../config/gateway-settings.ts';
import { unknownVariables } from '../config/unknown-variables.ts';
import { Gateway } from '@fleetgate/gateway';
import { closeOnSignals, exitOnStartFailure } from './lifecycle.ts';

/** `fleetgate gateway`: its settings (flags, FLEETGATE_* variables, --config file) are config/gateway-settings.ts. */
export function gatewayCommand(): Command {
  return gatewaySettingsCommand().action(async (flags: { logLevel: LogLevel }, command: Command) => {
    let resolved: ResolvedGateway;
    try {
      resolved = gatewayFromCommand(command, process.env);
    } catch (err: unknown) {
      exitOnStartFailure(err, createLogger({ name: 'gateway', level: flags.logLevel }));
    }
    const logger = createLogger({ name: 'gateway', level: resolved.logLevel });
    for (const variable of unknownVariables(process.env))
      logger.warn(variable, 'not a fleetgate setting: this environment variable is ignored');
    // Signal handlers first: a SIGTERM that arrives while starting (or right after "gateway ready") must
    // still stop the gateway in order, not kill it with the default action.
    let gateway: Gateway | undefined;
    closeOnSignals(async () => gateway?.close(), logger);
    process.on('SIGHUP', () => gateway?.reload());
    try {
      // The files the gateway reads, read first so that a refusal names where their path was written.
      await checkGatewayFiles(resolved);
      gateway = await Gateway.start({ ...resolved.options, logger, logLevel: resolved.logLevel });
    } catch (err: unknown) {
      exitOnStartFailure(err, logger);
    }
    gateway.on('fatal', () => process.exit(1));
  });
}
