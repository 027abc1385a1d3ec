/** `fleetgate`: one command for the gateway, the cloud-stub and the local stack. */
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { simCommand } from '@fleetgate/simulators';
import { VERSION } from '../version.ts';
import { cloudCommand } from './cloud-command.ts';
import { configCommand } from './config-command.ts';
import { deadletterCommand } from './deadletter-command.ts';
import { devCommand } from './dev-command.ts';
import { gatewayCommand } from './gateway-command.ts';
import { statusCommand } from './status-command.ts';
import { tokenCommand } from './token-command.ts';

const program = new Command('fleetgate')
  .description('fleetgate: an edge gateway for IoT fleets that never loses a message it acknowledged')
  .version(VERSION)
  .addCommand(gatewayCommand())
  .addCommand(cloudCommand())
  .addCommand(configCommand())
  .addCommand(tokenCommand())
  .addCommand(statusCommand())
  .addCommand(deadletterCommand())
  .addCommand(devCommand())
  .addCommand(simCommand(fileURLToPath(new URL('../../bin/fleetgate.js', import.meta.url))))
  .showHelpAfterError();

await program.parseAsync(process.argv);
