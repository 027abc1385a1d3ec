/** Flag parsers shared by the subcommands: each refusal names the flag, the value and what was expected. */
import { hostname } from 'node:os';
import { InvalidArgumentError, Option } from 'commander';
import { ConfigError, DURABILITIES, formatHostPort, parseHostPort, type Durability, type HostPort } from '@fleetgate/common';
import type { LevelWithSilent } from 'pino';

export function wrap<T>(parse: (value: string) => T): (value: string) => T {
  return (value) => {
    try {
      return parse(value);
    } catch (err: unknown) {
      throw new InvalidArgumentError(err instanceof ConfigError ? err.message.replace(/^[^:]+: /, '') : String(err));
    }
  };
}

export function hostPortOption(flags: string, description: string, fallback: HostPort, defaultHost = '127.0.0.1'): Option {
  return new Option(flags, description)
    .argParser(wrap((value) => parseHostPort(flags, value, defaultHost)))
    .default(fallback, formatHostPort(fallback));
}

export function integerOption(flags: string, description: string, fallback: number, min = 1): Option {
  return new Option(flags, description)
    .argParser(
      wrap((value) => {
        const n = Number(value);
        if (!Number.isInteger(n) || n < min) throw new Error(`"${value}" is not an integer >= ${min}`);
        return n;
      }),
    )
    .default(fallback);
}

export function durabilityOption(): Option {
  return new Option(
    '--durability <level>',
    'power: every commit is fsynced and survives power loss (SQLite synchronous=FULL); process: survives a crash of the process (NORMAL)',
  )
    .choices(DURABILITIES as Durability[])
    .default('power');
}

export function logLevelOption(): Option {
  return new Option('--log-level <level>', 'log level (env FLEETGATE_LOG_LEVEL)')
    .choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .env('FLEETGATE_LOG_LEVEL')
    .default('info' as LevelWithSilent);
}

/** A default gateway id that is stable on one machine: "gw-" and the host name, cleaned up. */
export function defaultGatewayId(): string {
  return `gw-${hostname().replace(/[^A-Za-z0-9._:-]/g, '-')}`.slice(0, 128);
}
