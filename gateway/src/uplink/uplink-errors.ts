/**
 * Why an uplink session ended, as errors of their own (UplinkStats.lastError is the message). Every one of them
 * ends the session and is retried (is-retryable.ts decides how soon); none is thrown to the uplink's owner.
 */
import { FleetgateError } from '@fleetgate/core';

/** Base of the uplink's own errors. */
export class UplinkError extends FleetgateError {
  override name = 'UplinkError';
}

/** The backend broke the protocol (a second Welcome, an ack for seqs never sent): freeing on its word could lose data. */
export class UplinkProtocolError extends UplinkError {
  override name = 'UplinkProtocolError';
  constructor(message: string) {
    super(`protocol error: ${message}`);
  }
}

/** The backend said no Welcome within welcomeTimeoutMs. */
export class WelcomeTimeoutError extends UplinkError {
  override name = 'WelcomeTimeoutError';
  constructor(readonly timeoutMs: number) {
    super(`no Welcome within ${timeoutMs} ms`);
  }
}

/** A backend that answers heartbeats sent nothing for deadAfterMs. */
export class BackendSilentError extends UplinkError {
  override name = 'BackendSilentError';
  constructor(
    readonly quietMs: number,
    readonly deadAfterMs: number,
  ) {
    super(`the backend sent nothing for ${quietMs} ms, not even a heartbeat answer (dead after ${deadAfterMs} ms)`);
  }
}

/** The backend ended the stream (with status OK): it may be restarting; the session starts over. */
export class StreamEndedError extends UplinkError {
  override name = 'StreamEndedError';
  constructor() {
    super('the backend ended the stream');
  }
}

/** The gateway's token could not be read (getToken threw): an operator may be putting one in place. */
export class NoTokenError extends UplinkError {
  override name = 'NoTokenError';
  constructor(cause: unknown) {
    super(`no token for the backend: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/** The uplink's owner ended the session (Uplink.restart), e.g. because the journal was renumbered. */
export class SessionRestartError extends UplinkError {
  override name = 'SessionRestartError';
}
