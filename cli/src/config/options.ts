/** Flag parsers shared by the subcommands: each refusal names the flag, the value and what was expected. */
import { hostname } from 'node:os';
import { InvalidArgumentError, Option } from 'commander';
import ms from 'ms';
import { ConfigError, DURABILITIES, type Durability, formatHostPort, type HostPort, parseHostPort } from '@fleetgate/core';
import type { LogLevel } from '@fleetgate/common';

export function wrap<T>(parse: (value: string) => T): (value: string) => T {
  return (value) => {
    try {
      return parse(value);
    } catch (err: unknown) {
      throw new InvalidArgumentError(
        err instanceof ConfigError ? err.message.slice(err.field.length + 2) : err instanceof Error ? err.message : String(err),
      );
    }
  };
}

export function hostPortOption(flags: string, description: string, fallback: HostPort, defaultHost = '127.0.0.1'): Option {
  return new Option(flags, description)
    .argParser(wrap((value) => parseHostPort(flags, value, defaultHost)))
    .default(fallback, formatHostPort(fallback));
}

export function integerOption(flags: string, description: string, fallback: number | undefined, min = 1): Option {
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

/** A size setting ("500MB", "2GiB", bytes), parsed to bytes; `shown` is how --help shows the default. */
export function sizeOption(flags: string, description: string, fallback?: number, shown?: string): Option {
  return new Option(flags, description).argParser(wrap((value) => parseSize(flags, value))).default(fallback, shown);
}

/** A duration setting ("7d", "12h", 0), parsed to milliseconds; `shown` is how --help shows the default. */
export function durationOption(flags: string, description: string, fallback?: number, shown?: string): Option {
  return new Option(flags, description).argParser(wrap((value) => parseDuration(flags, value))).default(fallback, shown);
}

/** A comma-separated list ("a,b"), as its trimmed non-empty items. */
export function listOption(flags: string, description: string): Option {
  return new Option(flags, description).argParser((value: string) =>
    value
      .split(',')
      .map((item) => item.trim())
      .filter(Boolean),
  );
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
  // No Option.env(): FLEETGATE_LOG_LEVEL is read with every other FLEETGATE_* setting (config/settings.ts).
  return new Option('--log-level <level>', 'log level')
    .choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info' as LogLevel);
}

/** A default gateway id that is stable on one machine: "gw-" and the host name, cleaned up. */
export function defaultGatewayId(): string {
  return `gw-${hostname().replace(/[^A-Za-z0-9._:-]/g, '-')}`.slice(0, 128);
}

const SIZE_UNITS: Record<string, number> = { '': 1, B: 1, KB: 1e3, MB: 1e6, GB: 1e9, KIB: 1024, MIB: 1024 ** 2, GIB: 1024 ** 3 };

/** "500MB", "2GiB", "1048576" -> bytes; a ConfigError naming the flag otherwise. */
export function parseSize(field: string, value: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim());
  const unit = match ? SIZE_UNITS[match[2]!.toUpperCase()] : undefined;
  if (!match || unit === undefined) throw new ConfigError(field, `"${value}" is not a size (like 500MB, 2GiB, or bytes)`);
  return Math.round(Number(match[1]) * unit);
}

/** "7d", "12h", "0" -> ms; a ConfigError naming the flag otherwise. */
export function parseDuration(field: string, value: string): number {
  if (value.trim() === '0') return 0;
  const parsed = ms(value as ms.StringValue);
  if (typeof parsed !== 'number' || !(parsed > 0))
    throw new ConfigError(field, `"${value}" is not a duration (like 7d, 12h, 30m, or 0)`);
  return parsed;
}
