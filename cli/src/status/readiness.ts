/** What a gateway's /readyz says (or, from a gateway without it, /healthz), for `fleetgate status`. */

/** What /readyz said (or, from a gateway without it, /healthz). */
export interface Readiness {
  ready: boolean;
  source: 'readyz' | 'healthz';
  /** The body's `status`, when it has one. */
  status: string;
  checks: ReadinessCheck[];
}

export interface ReadinessCheck {
  name: string;
  ok: boolean;
  detail: string;
}

/**
 * /readyz's answer: ready is its HTTP status (200), `status` may add "degraded" (ready, some upstream down),
 * the checks whatever shape they take: a map of name to boolean, "ok"-like string or
 * `{ok | status, reason | detail | message | error}`, or a list of such objects with a `name`.
 */
export function parseReadiness(httpStatus: number, body: unknown): Readiness {
  const okWord = (v: unknown) => v === true || (typeof v === 'string' && /^(ok|pass|passed|ready|up|healthy)$/i.test(v));
  const checks: ReadinessCheck[] = [];
  const add = (name: string, value: unknown) => {
    if (value && typeof value === 'object') {
      const v = value as Record<string, unknown>;
      const ok = 'ok' in v ? v.ok === true : okWord(v.status);
      const detail =
        [v.reason, v.detail, v.message, v.error].find((d) => typeof d === 'string' && d !== '') ??
        (!ok && typeof v.status === 'string' ? v.status : '');
      checks.push({ name: typeof v.name === 'string' ? v.name : name, ok, detail: String(detail) });
    } else {
      checks.push({ name, ok: okWord(value), detail: typeof value === 'string' && !okWord(value) ? value : '' });
    }
  };
  const raw = body && typeof body === 'object' ? (body as { checks?: unknown }).checks : undefined;
  if (Array.isArray(raw)) raw.forEach((check: unknown, i) => add(String(i + 1), check));
  else if (raw && typeof raw === 'object') for (const [name, value] of Object.entries(raw)) add(name, value);
  // The gateway's upstreams make it degraded, not unready: listed as checks of their own.
  const upstreams = body && typeof body === 'object' ? (body as { upstreams?: unknown }).upstreams : undefined;
  if (upstreams && typeof upstreams === 'object' && !Array.isArray(upstreams)) {
    for (const [name, value] of Object.entries(upstreams)) add(`upstream ${name}`, value);
  }
  return { ready: httpStatus === 200, source: 'readyz', status: statusField(body), checks };
}

/** The body's `status` string, or "". */
export function statusField(body: unknown): string {
  const status = body && typeof body === 'object' ? (body as { status?: unknown }).status : undefined;
  return typeof status === 'string' ? status : '';
}
