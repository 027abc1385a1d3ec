/** How a long-running subcommand stops: SIGTERM or SIGINT closes it in order; a second signal exits at once. */
import type { Logger } from '@fleetgate/common';

export function closeOnSignals(close: () => Promise<void>, logger: Logger): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'stopping');
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/** Prints a start-up failure as one clear line (no stack for expected errors) and exits 1. */
export function exitOnStartFailure(err: unknown, logger: Logger): never {
  const message = err instanceof Error ? err.message : String(err);
  logger.fatal({ err: message }, 'cannot start');
  process.stderr.write(`fleetgate: ${message}\n`);
  process.exit(1);
}
