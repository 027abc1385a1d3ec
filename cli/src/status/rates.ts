/**
 * Rates for `fleetgate status`, from two samples of GET /v1/stats (the gateway keeps counters, not rates), made of
 * the same counters as the status page's (gateway/assets/status-page-script.js).
 */
import type { GatewayStats } from '@fleetgate/gateway';

/** An earlier sample, for rates. */
export interface PreviousSample {
  stats: GatewayStats;
  secondsAgo: number;
}

/** Per second, between two samples; null without an earlier sample, or across a restart (counters went down). */
export interface StatusRates {
  messagesIn: number | null;
  /** Records freed from the journal because every upstream they go to acknowledged them. */
  recordsAcked: number | null;
  /** Records sent, by upstream name. */
  upstreamsSent: Record<string, number | null>;
}

export function statusRates(stats: GatewayStats, previous?: PreviousSample): StatusRates {
  const now = counters(stats);
  const before =
    previous && previous.secondsAgo > 0 && previous.stats.uptimeSeconds <= stats.uptimeSeconds
      ? counters(previous.stats)
      : undefined;
  const per = (a: number | null | undefined, b: number | null | undefined) =>
    before && previous && a !== null && a !== undefined && b !== null && b !== undefined && a >= b
      ? (a - b) / previous.secondsAgo
      : null;
  const upstreamsSent: Record<string, number | null> = {};
  for (const [name, sent] of Object.entries(now.sent)) upstreamsSent[name] = per(sent, before?.sent[name]);
  return {
    messagesIn: per(now.messagesIn, before?.messagesIn),
    recordsAcked: per(now.delivered, before?.delivered),
    upstreamsSent,
  };
}

/** The counters the rates are made of (kept the same as the status page's). */
function counters(stats: GatewayStats) {
  const j = stats.journal;
  const sent: Record<string, number> = {};
  for (const u of stats.upstreams ?? []) sent[u.name] = u.recordsSent;
  return {
    messagesIn: (stats.ingress?.messages ?? 0) + (stats.deviceLink?.messages ?? 0),
    // Rows freed because every upstream acknowledged them: appended, minus still held, minus dropped.
    delivered:
      typeof j.committedRows === 'number' && typeof j.rows === 'number' ? j.committedRows - j.rows - sum(j.dropped) : null,
    sent,
  };
}

/** The finite values of a record of counts, added up. */
export function sum(record: Record<string, number> | undefined): number {
  return Object.values(record ?? {}).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
}
