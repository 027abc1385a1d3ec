import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';

export type { Logger } from 'pino';

export interface LoggerOptions {
  /** The component, e.g. "gateway" or "cloud". */
  name: string;
  /** Default: $FLEETGATE_LOG_LEVEL, else "info". */
  level?: LevelWithSilent;
  /** Default: standard output, one JSON object per line. */
  destination?: DestinationStream;
}

const LEVELS: readonly string[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** The level named by $FLEETGATE_LOG_LEVEL, or `fallback`. */
export function envLogLevel(fallback: LevelWithSilent = 'info'): LevelWithSilent {
  const level = process.env.FLEETGATE_LOG_LEVEL;
  return level !== undefined && LEVELS.includes(level) ? (level as LevelWithSilent) : fallback;
}

/**
 * Structured logs (pino): one JSON object per line on stdout. Components log state changes, never one line
 * per message.
 */
export function createLogger({ name, level, destination }: LoggerOptions): Logger {
  const options = { name, level: level ?? envLogLevel(), base: { pid: process.pid } };
  return destination ? pino(options, destination) : pino(options, pino.destination({ fd: 1, sync: true }));
}

/** A logger that drops everything: for embedding and tests that assert on other things. */
export const silentLogger: Logger = pino({ level: 'silent' });
