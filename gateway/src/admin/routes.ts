/** The gateway's admin HTTP routes. */
import type { Routes } from '@fleetgate/common';
import type { GatewayStats } from '../stats.ts';
import { GatewayMetrics } from './metrics.ts';
import { Readiness, type GatewayCondition } from './readiness.ts';
import { statusPageHtml } from './status-page.ts';

/** What the admin routes ask of a running gateway. */
export interface AdminSource {
  stats(): Promise<GatewayStats>;
  /** Set once the journal thread failed (the gateway is about to exit); closing once a stop began. */
  condition(): GatewayCondition;
}

export function gatewayAdminRoutes(source: AdminSource): Routes {
  const metrics = new GatewayMetrics(source);
  const readiness = new Readiness();
  return {
    // Alive: the process answers and the journal thread has not failed.
    'GET /healthz': () => {
      const { failure, closing } = source.condition();
      if (failure) return { status: 503, body: { status: 'failed', error: failure } };
      if (closing) return { status: 503, body: { status: 'shutting down' } };
      return { status: 200, body: { status: 'ok' } };
    },
    // Ready: the journal takes writes and the listeners are up (200), else 503; the body says check by check.
    // An upstream that is down is reported ("degraded") but leaves the gateway ready: the journal keeps taking
    // data while the backend is away, which is the point of the gateway (see readiness.ts).
    'GET /readyz': async () => {
      const stats = await source.stats().catch((error: unknown) => ({ error }));
      const report = readiness.check(source.condition(), stats);
      return { status: report.ready ? 200 : 503, body: report };
    },
    // Prometheus text format, from one stats snapshot per scrape.
    'GET /metrics': async () => ({ status: 200, contentType: metrics.contentType, text: await metrics.render() }),
    'GET /v1/stats': async () => ({ status: 200, body: await source.stats() }),
    'GET /': () => ({ status: 200, contentType: 'text/html; charset=utf-8', text: statusPageHtml() }),
  };
}
