/** `fleetgate config check FILE`: validates a gateway or cloud-stub config file without starting anything. */
import { Command, Option } from 'commander';
import { checkConfigFile, type ConfigKind } from '../config/config-check.ts';

export function configCommand(): Command {
  const config = new Command('config').description(
    'config files of fleetgate gateway and fleetgate cloud (see deploy/*.example.yaml)',
  );
  config
    .command('check')
    .description(
      'check FILE as a start would, short of opening sockets: every setting, and the files it names (keys, certificates, tokens, ACL). ' +
        'Exit 0 and a summary if it is good, 1 and the errors if not, 2 for a wrong command line',
    )
    .argument('<file>', 'the YAML config file')
    .addOption(
      new Option('--for <command>', 'which command the file is for (default: guessed from its keys)').choices([
        'gateway',
        'cloud',
      ]),
    )
    .option(
      '--with-env',
      "also apply this shell's FLEETGATE_* variables, as a start would (by default the file alone is checked)",
      false,
    )
    .action(async (file: string, flags: { for?: ConfigKind; withEnv: boolean }) => {
      try {
        const { kind, summary } = await checkConfigFile(file, {
          ...(flags.for ? { kind: flags.for } : {}),
          env: flags.withEnv ? process.env : {},
        });
        process.stdout.write(`${file}: ok (fleetgate ${kind})\n${summary.map((line) => `  ${line}\n`).join('')}`);
      } catch (err: unknown) {
        process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
        process.exitCode = 1;
      }
    });
  // A wrong command line is exit 2, told apart from a bad file (1); --help stays 0.
  for (const command of [config, ...config.commands]) command.exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
  return config;
}
