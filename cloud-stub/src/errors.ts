/**
 * The cloud-stub's errors, in one place (as nats.js keeps its own in errors.ts): each a FleetgateError with a
 * stable `name` to branch on and the `cause` kept. Which of them a gateway should resend after is said on each:
 * the uplink session turns a failed commit into no Ack, and the gateway resends (deduped by gateway id and seq).
 */
import { FleetgateError } from '@fleetgate/core';

/** A commit or gap JetStream did not store (acknowledge) in time. Retryable: resends are deduped. */
export class JetStreamStoreError extends FleetgateError {
  override name = 'JetStreamStoreError';
}

/** No PubAck in time, an error PubAck, or the connection lost: what was not acknowledged may or may not be stored. */
export class PublishError extends FleetgateError {
  override name = 'PublishError';
}

/** Reading the stream back (export, gaps, a gateway's seqs) made no progress. */
export class StreamReadError extends FleetgateError {
  override name = 'StreamReadError';
}

/** A record (or batch) that cannot be stored as it is: refused before anything is published. Not retryable. */
export class InvalidRecordError extends FleetgateError {
  override name = 'InvalidRecordError';
}

/** A gap report that cannot be stored as it is (a field that is not an integer). Not retryable. */
export class InvalidGapError extends FleetgateError {
  override name = 'InvalidGapError';
}

/** A message in the stream, or a subject, that is not what the JetStream sink writes (sink-jetstream-codec.ts). */
export class StreamMessageError extends FleetgateError {
  override name = 'StreamMessageError';
}

/** The sink was closed: it takes no more commits and answers no more reads. */
export class SinkClosedError extends FleetgateError {
  override name = 'SinkClosedError';
}

/** One command met more conflicting compare-and-sets in a row than a store tries (command-store-jetstream.ts). */
export class CommandConflictError extends FleetgateError {
  override name = 'CommandConflictError';
}

/** The sink thread could not open its sink, or exited. */
export class SinkThreadError extends FleetgateError {
  override name = 'SinkThreadError';
}
