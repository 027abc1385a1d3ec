/**
 * The packages a lab adds to the CLI: `@fleetgate/cloud-stub` (`fleetgate cloud`, `fleetgate dev`) and
 * `@fleetgate/simulators` (`fleetgate sim`, `fleetgate dev`). They are optional peer dependencies of
 * @fleetgate/cli, so a site installs the gateway without the backend's and the simulator's dependencies; a
 * subcommand that needs one that is not installed says so and what to install, instead of failing to load.
 */
import { Command } from 'commander';

export type LabPackage = '@fleetgate/cloud-stub' | '@fleetgate/simulators';

/** The lab packages of `needs` that this installation cannot resolve. */
export function missingPackages(needs: readonly LabPackage[]): LabPackage[] {
  return needs.filter((name) => {
    try {
      import.meta.resolve(name);
      return false;
    } catch {
      return true;
    }
  });
}

/** How to install what is missing, for a message. */
export function installHint(missing: readonly LabPackage[]): string {
  return `npm install -g ${missing.join(' ')} (beside @fleetgate/cli; in a project: npm install ${missing.join(' ')})`;
}

/**
 * `load()` when every package of `needs` is installed; otherwise a stand-in subcommand `name` that, run, prints
 * what is missing and exits 2 (so `fleetgate --help` still lists it).
 */
export async function labCommand(name: string, needs: readonly LabPackage[], load: () => Promise<Command>): Promise<Command> {
  const missing = missingPackages(needs);
  if (missing.length === 0) return load();
  const message = `fleetgate ${name} needs ${missing.join(' and ')}, not installed here: ${installHint(missing)}`;
  return new Command(name)
    .description(`(not installed: ${missing.join(', ')})`)
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => {
      process.stderr.write(message + '\n');
      process.exit(2);
    });
}
