/** Base of fleetgate's own errors: a stable `name` to branch on, and the `cause` kept. */
export class FleetgateError extends Error {
  override name = 'FleetgateError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A setting that cannot be used; the message names the field, the value and what was expected. */
export class ConfigError extends FleetgateError {
  override name = 'ConfigError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

/** One line for logs and refusals, whatever was thrown. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
