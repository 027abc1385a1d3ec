import { FleetgateError } from '@fleetgate/core';

/** The outbox is at its bound: the message was not taken (nothing is ever dropped silently). */
export class OutboxFullError extends FleetgateError {
  override name = 'OutboxFullError';
}

/** The client is closed (or closing): it takes no more messages. */
export class ClientClosedError extends FleetgateError {
  override name = 'ClientClosedError';
}

/** A payload over the gateway's limit: it would be refused, so it is not taken. */
export class PayloadTooLargeError extends FleetgateError {
  override name = 'PayloadTooLargeError';
}

/** The outbox could not make what it took durable (the disk refused): emitted as 'error'; the messages stay queued. */
export class OutboxFlushError extends FleetgateError {
  override name = 'OutboxFlushError';
}
