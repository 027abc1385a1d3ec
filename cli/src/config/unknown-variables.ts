/**
 * FLEETGATE_* variables that nothing reads. A variable is the quietest way to set something, and a typo in one
 * (FLEETGATE_JOURNAL_MAX_BYTE) would otherwise leave the default in force without a word: the gateway and the
 * cloud-stub log each such variable as a warning at start, with the setting it was probably meant to be.
 */
import { didYouMean } from './did-you-mean.ts';
import { cloudServeSettingsCommand } from './cloud-settings.ts';
import { gatewaySettingsCommand } from './gateway-settings.ts';
import { CONFIG_ENV, envName, settingKeys } from './settings.ts';

/** Read elsewhere than the settings: the config file, the log format (logger.ts), the CLI's path (test support). */
const OTHER_VARIABLES = [CONFIG_ENV, 'FLEETGATE_LOG_FORMAT', 'FLEETGATE_BIN'];

const PREFIX = 'FLEETGATE_';

export interface UnknownVariable {
  name: string;
  /** The known variable closest to it, if close enough to be a typo of it. */
  didYouMean?: string;
}

/** The FLEETGATE_* variables of `env` that are no setting of `fleetgate gateway` or `fleetgate cloud`. */
export function unknownVariables(env: NodeJS.ProcessEnv): UnknownVariable[] {
  const known = new Set(
    [...settingKeys(gatewaySettingsCommand()), ...settingKeys(cloudServeSettingsCommand())].map(envName).concat(OTHER_VARIABLES),
  );
  return Object.keys(env)
    .filter((name) => name.startsWith(PREFIX) && !known.has(name))
    .sort()
    .map((name) => {
      // Compared without the prefix they all share, or any two names would look alike.
      const guess = didYouMean(
        name.slice(PREFIX.length),
        [...known].map((k) => k.slice(PREFIX.length)),
      );
      return guess ? { name, didYouMean: PREFIX + guess } : { name };
    });
}
