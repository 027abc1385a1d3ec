/**
 * The CLI's own errors, in one place (as nats.js keeps its own in errors.ts): each a FleetgateError with a stable
 * `name` and the `cause` kept. A setting that cannot be used is core's ConfigError; a bad flag is commander's.
 */
import { FleetgateError } from '@fleetgate/core';

/** Thrown when the admin port cannot be reached, or answers something that is not a gateway's stats. */
export class AdminUnreachableError extends FleetgateError {
  override name = 'AdminUnreachableError';
}
