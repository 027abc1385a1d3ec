/**
 * The one place that decides what a failed session means for the next one, for gRPC statuses (as OpenTelemetry
 * JS's exporter-base decides for exports in is-export-retryable.ts). The uplink never gives up: the journal
 * holds the data, and an uplink that stopped would stream nothing until the gateway restarts. What differs is
 * how soon it tries again.
 *
 * - Retryable, on the reconnect backoff (exponential from 100 ms to reconnectMaxMs, full jitter): everything a
 *   later attempt may not meet: UNAVAILABLE, a reset, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED (a GOAWAY), the
 *   uplink's own session errors (uplink-errors.ts).
 * - Refused: UNAUTHENTICATED (the token is missing, bad, expired or revoked) and PERMISSION_DENIED (the token
 *   is good but not for this gateway id). The same credentials get the same answer: the next attempt waits
 *   refusedRetryMs (or until the token changes), and the uplink shows the refusal (UplinkStats.refused,
 *   fleetgate_upstream_refused) instead of retrying in silence every few seconds.
 */
import { status } from '@grpc/grpc-js';

/** How the backend refused the gateway's credentials. */
export type AuthRefusal = 'UNAUTHENTICATED' | 'PERMISSION_DENIED';

export const AUTH_REFUSALS: readonly AuthRefusal[] = ['UNAUTHENTICATED', 'PERMISSION_DENIED'];

/** The auth refusal a session error is (its gRPC status), or undefined for any other failure. */
export function authRefusal(err: unknown): AuthRefusal | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === status.UNAUTHENTICATED) return 'UNAUTHENTICATED';
  if (code === status.PERMISSION_DENIED) return 'PERMISSION_DENIED';
  return undefined;
}

/** Is the next session tried on the usual backoff (true), or only after refusedRetryMs (an auth refusal)? */
export function isRetryable(err: unknown): boolean {
  return authRefusal(err) === undefined;
}
