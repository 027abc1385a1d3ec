/** The gateway's admin HTTP routes. */
import type { Routes } from '@fleetgate/common';
import type { GatewayStats } from '../stats.ts';
import type { GatewayMetrics } from './metrics.ts';
import { Readiness, type GatewayCondition } from './readiness.ts';
import { statusPageHtml } from './status-page.ts';

/** What the admin routes ask of a running gateway. */
export interface AdminSource {
  stats(): Promise<GatewayStats>;
  /** Set once the journal thread failed (the gateway is about to exit); closing once a stop began. */
  condition(): GatewayCondition;
}

export function gatewayAdminRoutes(source: AdminSource): Routes {
  // prom-client (and the OpenTelemetry API it loads) is loaded at the first scrape: a gateway nobody scrapes
  // (a Pi without Prometheus) does not carry it.
  let metrics: Promise<GatewayMetrics> | undefined;
  const loadMetrics = () => (metrics ??= import('./metrics.ts').then(({ GatewayMetrics }) => new GatewayMetrics(source)));
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
    'GET /metrics': async () => {
      const m = await loadMetrics();
      return { status: 200, contentType: m.contentType, text: await m.render() };
    },
    'GET /v1/stats': async () => ({ status: 200, body: await source.stats() }),
    'GET /': () => ({ status: 200, contentType: 'text/html; charset=utf-8', text: statusPageHtml() }),
  };
}
