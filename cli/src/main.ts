/**
 * `fleetgate`: one command for the gateway, the cloud-stub and the local stack. Each subcommand's module is
 * loaded only when it is the one asked for (all of them for the top-level --help): `fleetgate status` need not
 * load aedes, grpc-js and SQLite, which on a Raspberry Pi is seconds.
 */
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { labCommand } from './commands/lab-packages.ts';
import { VERSION } from './version.ts';

const BIN = fileURLToPath(new URL('../bin/fleetgate.js', import.meta.url));

/** In the order --help lists them. */
const subcommands: Record<string, () => Promise<Command>> = {
  gateway: async () => (await import('./commands/gateway-command.ts')).gatewayCommand(),
  cloud: () =>
    labCommand('cloud', ['@fleetgate/cloud-stub'], async () => (await import('./commands/cloud-command.ts')).cloudCommand()),
  config: async () => (await import('./commands/config-command.ts')).configCommand(),
  token: async () => (await import('./commands/token-command.ts')).tokenCommand(),
  status: async () => (await import('./commands/status-command.ts')).statusCommand(),
  deadletter: async () => (await import('./commands/deadletter-command.ts')).deadletterCommand(),
  dev: () =>
    labCommand('dev', ['@fleetgate/cloud-stub', '@fleetgate/simulators'], async () =>
      (await import('./commands/dev-command.ts')).devCommand(),
    ),
  sim: () => labCommand('sim', ['@fleetgate/simulators'], async () => (await import('@fleetgate/simulators')).simCommand(BIN)),
};

const asked = process.argv[2];
if (asked === '--version' || asked === '-V') {
  // Answered before any subcommand is loaded: a health check or an install script asks this often.
  process.stdout.write(VERSION + '\n');
  process.exit(0);
}
const load = asked !== undefined && Object.hasOwn(subcommands, asked) ? [subcommands[asked]!] : Object.values(subcommands);
const program = new Command('fleetgate')
  .description('fleetgate: an edge gateway for IoT fleets that never loses a message it acknowledged')
  .version(VERSION)
  .showHelpAfterError();
for (const command of await Promise.all(load.map((loader) => loader()))) program.addCommand(command);

await program.parseAsync(process.argv);
