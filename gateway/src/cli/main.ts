/**
 * `fleetgate`: one command for the gateway, the cloud-stub and the local stack. Each subcommand's module is
 * loaded only when it is the one asked for (all of them for the top-level --help): `fleetgate status` need not
 * load aedes, grpc-js and SQLite, which on a Raspberry Pi is seconds.
 */
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { VERSION } from '../version.ts';

const BIN = fileURLToPath(new URL('../../bin/fleetgate.js', import.meta.url));

/** In the order --help lists them. */
const subcommands: Record<string, () => Promise<Command>> = {
  gateway: async () => (await import('./gateway-command.ts')).gatewayCommand(),
  cloud: async () => (await import('./cloud-command.ts')).cloudCommand(),
  config: async () => (await import('./config-command.ts')).configCommand(),
  token: async () => (await import('./token-command.ts')).tokenCommand(),
  status: async () => (await import('./status-command.ts')).statusCommand(),
  deadletter: async () => (await import('./deadletter-command.ts')).deadletterCommand(),
  dev: async () => (await import('./dev-command.ts')).devCommand(),
  sim: async () => (await import('@fleetgate/simulators')).simCommand(BIN),
};

const asked = process.argv[2];
const load = asked !== undefined && Object.hasOwn(subcommands, asked) ? [subcommands[asked]!] : Object.values(subcommands);
const program = new Command('fleetgate')
  .description('fleetgate: an edge gateway for IoT fleets that never loses a message it acknowledged')
  .version(VERSION)
  .showHelpAfterError();
for (const command of await Promise.all(load.map((loader) => loader()))) program.addCommand(command);

await program.parseAsync(process.argv);
