/** The errors of the pipeline, and the classes an error keeps when it crosses from the journal thread. */
import { ConfigError, FleetgateError } from '@fleetgate/core';
import type { ErrorClasses } from '@fleetgate/common';
import { JournalError, JournalFullError } from '../journal/journal.ts';

/** The journal thread failed, exited, or could not commit; `cause` says what it met. */
export class PipelineError extends FleetgateError {
  override name = 'PipelineError';
}

/** What the main thread re-creates, by name, of the errors the journal thread answers with. */
export const PIPELINE_ERRORS: ErrorClasses = {
  PipelineError,
  JournalFullError,
  JournalError,
  ConfigError,
  FleetgateError,
  RangeError,
};
