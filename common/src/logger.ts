/**
 * Logging (pino). One JSON object per line on stdout, which is what journald, `./data/logs/` and the tests read;
 * on a terminal the same records are printed by pino-pretty instead. Components log state changes, never one
 * line per message, so neither the format nor the redaction below is on a hot path.
 *
 * Pretty printing is synchronous (pino-pretty's prettyFactory in front of pino's own synchronous stdout stream),
 * not a pino transport: a transport is a thread of its own that would lose the last lines of a process that exits
 * right after logging (`cannot start`), and would print the journal thread's lines out of order with the main
 * thread's. The format is decided per process from fd 1 (isatty), not from `process.stdout`, which in a worker
 * thread is a pipe to the main thread: the journal thread then prints like the main thread.
 */
import { createRequire } from 'node:module';
import { isatty } from 'node:tty';
import { pino, type DestinationStream, type Logger, type LevelWithSilent, type LoggerOptions as PinoOptions } from 'pino';
import type PinoPretty from 'pino-pretty';

export type { Logger } from 'pino';
/** A log level, `silent` included (pino's LevelWithSilent), so that packages need not import pino for it. */
export type LogLevel = LevelWithSilent;

export type LogFormat = 'json' | 'pretty';

export interface LoggerOptions {
  /** The component, e.g. "gateway" or "cloud". */
  name: string;
  /** Default: $FLEETGATE_LOG_LEVEL, else "info". */
  level?: LevelWithSilent;
  /** Default: standard output. */
  destination?: DestinationStream;
  /** Default: JSON for a given destination; for standard output, $FLEETGATE_LOG_FORMAT, else pretty on a terminal, JSON otherwise. */
  format?: LogFormat;
}

const LEVELS: readonly string[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** The level named by $FLEETGATE_LOG_LEVEL, or `fallback`. */
export function envLogLevel(fallback: LevelWithSilent = 'info'): LevelWithSilent {
  const level = process.env.FLEETGATE_LOG_LEVEL;
  return level !== undefined && LEVELS.includes(level) ? (level as LevelWithSilent) : fallback;
}

/** `setting` (default $FLEETGATE_LOG_FORMAT) when it is "json" or "pretty"; otherwise pretty on a terminal, JSON on a pipe or journald. */
export function resolveLogFormat(
  setting: string | undefined = process.env.FLEETGATE_LOG_FORMAT,
  terminal: boolean = isatty(1),
): LogFormat {
  if (setting === 'json' || setting === 'pretty') return setting;
  return terminal ? 'pretty' : 'json';
}

/**
 * Fields whose values never reach a log: tokens (device and gateway JWTs, the uplink's `authorization: Bearer`
 * metadata), MQTT passwords, HS256 secrets and private keys (TLS, signing). The code logs none of them today; this
 * is the net under a future `logger.info({ options })` or `{ headers }`. Matched at the top level and two levels
 * down (pino's redact has no recursive wildcard), so `{ tls: { key } }` and `{ req: { headers: { authorization } } }`
 * are covered. Paths name file paths (`tokenFile`, `keyFile`) are left alone: a path is not a secret. Text inside a
 * message string is not redacted: no message is built from a secret.
 */
const SECRET_FIELDS = [
  'token',
  'accessToken',
  'jwt',
  'password',
  'passphrase',
  'secret',
  'authorization',
  'Authorization',
  'cookie',
  'key',
  'privateKey',
  'private_key',
  'signingKey',
  'tlsKey',
  'upstreamKey',
];
export const REDACTED_PATHS: readonly string[] = SECRET_FIELDS.flatMap((field) => [field, `*.${field}`, `*.*.${field}`]);
export const REDACTED = '[redacted]';

/** Structured logs (pino): JSON lines, or pretty on a terminal; secrets redacted (see REDACTED_PATHS). */
export function createLogger({ name, level, destination, format }: LoggerOptions): Logger {
  const options: PinoOptions = {
    name,
    level: level ?? envLogLevel(),
    base: { pid: process.pid },
    redact: { paths: [...REDACTED_PATHS], censor: REDACTED },
  };
  const out = destination ?? pino.destination({ fd: 1, sync: true });
  const pretty = (format ?? (destination ? 'json' : resolveLogFormat())) === 'pretty';
  return pino(options, pretty ? prettyStream(out, !destination) : out);
}

/**
 * Each JSON line pino writes, printed human-readable into `out`, in the same write (no thread, no buffering).
 * pino-pretty is loaded here, only for a terminal: under systemd or a pipe the logs are JSON and it is not.
 */
function prettyStream(out: DestinationStream, colorIfSupported: boolean): DestinationStream {
  const pinoPretty = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
  const colorize = colorIfSupported && pinoPretty.isColorSupported;
  const prettify = pinoPretty.prettyFactory({ colorize, translateTime: 'SYS:HH:MM:ss.l', ignore: 'hostname' });
  return { write: (line: string) => out.write(prettify(line)) };
}

/** A logger that drops everything: for embedding and tests that assert on other things. */
export const silentLogger: Logger = pino({ level: 'silent' });
