/**
 * What `fleetgate status` reads from a gateway's admin port: GET /v1/stats and GET /readyz (or, from a gateway
 * without it, /healthz), each with a timeout; whatever goes wrong becomes an AdminUnreachableError that says where
 * it looked and why.
 */
import type { GatewayStats } from '@fleetgate/gateway';
import { AdminUnreachableError } from '../errors.ts';
import { parseReadiness, statusField, type Readiness } from './readiness.ts';

const REQUEST_TIMEOUT_MS = 5000;

/** One look at the gateway: its stats, its readiness, and when (performance.now(), for rates). */
export interface Sample {
  stats: GatewayStats;
  readiness: Readiness;
  atMs: number;
}

export async function sample(admin: string): Promise<Sample> {
  const [stats, readiness] = await Promise.all([getJson(admin, '/v1/stats'), readinessOf(admin)]);
  if (stats.status !== 200)
    throw new AdminUnreachableError(
      `the gateway's admin port at ${admin} answered ${stats.status} to /v1/stats${bodyError(stats.body)}`,
    );
  const body = stats.body as Partial<GatewayStats> | null;
  if (!body || typeof body !== 'object' || typeof body.gatewayId !== 'string' || typeof body.journal !== 'object') {
    throw new AdminUnreachableError(
      `${admin} is not a gateway's admin port: its /v1/stats has no gatewayId and journal (the cloud-stub's admin port is another)`,
    );
  }
  return { stats: body as GatewayStats, readiness, atMs: performance.now() };
}

/** /readyz; a gateway from before it answers 404, and then /healthz says whether it serves. */
async function readinessOf(admin: string): Promise<Readiness> {
  const ready = await getJson(admin, '/readyz');
  if (ready.status !== 404) return parseReadiness(ready.status, ready.body);
  const health = await getJson(admin, '/healthz');
  const status = statusField(health.body);
  return { ready: health.status === 200, source: 'healthz', status, checks: [] };
}

async function getJson(admin: string, path: string): Promise<{ status: number; body: unknown }> {
  let response: Response;
  try {
    response = await fetch(`${admin}${path}`, {
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      headers: { accept: 'application/json' },
    });
  } catch (err: unknown) {
    throw new AdminUnreachableError(`cannot reach the gateway's admin port at ${admin}: ${fetchFailure(err)}`, { cause: err });
  }
  const text = await response.text().catch(() => '');
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  return { status: response.status, body };
}

/** The useful part of a failed fetch: undici hides the system error (ECONNREFUSED...) in `cause`. */
function fetchFailure(err: unknown): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError'))
    return `no answer within ${REQUEST_TIMEOUT_MS / 1000} s`;
  let cause: unknown = err instanceof Error ? err.cause : undefined;
  if (cause instanceof AggregateError && cause.errors.length > 0) cause = cause.errors[0];
  if (cause && typeof cause === 'object') {
    const { code, message } = cause as { code?: unknown; message?: unknown };
    if (typeof code === 'string') return code;
    if (typeof message === 'string' && message) return message;
  }
  return err instanceof Error ? err.message : String(err);
}

function bodyError(body: unknown): string {
  const error = body && typeof body === 'object' ? (body as { error?: unknown }).error : undefined;
  return typeof error === 'string' ? `: ${error}` : '';
}
