/**
 * `fleetgate status [--admin URL] [--json] [--watch]`: a running gateway's state in a terminal, from its admin
 * port: devices online, messages in and records acked per second, the journal's backlog, the data at risk,
 * each upstream, commands, readiness. Exit code 0 when the gateway is ready, 1 when it is not or cannot be
 * reached: usable as a check in a script.
 *
 * Rates come from two samples of GET /v1/stats a second apart (the gateway keeps counters, not rates), as the
 * status page does with its polls. Formatting is a pure function, `formatStatus`, for tests.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { FleetgateError } from '@fleetgate/core';
import type { GatewayStats, UpstreamStats } from '@fleetgate/gateway';

export const DEFAULT_ADMIN = 'http://127.0.0.1:9180';
/** Between the two samples of a one-off status, and between samples with --watch. */
const SAMPLE_GAP_MS = 1000;
const WATCH_INTERVAL_MS = 2000;
const REQUEST_TIMEOUT_MS = 5000;

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

export interface FormatOptions {
  /** ANSI colours; the command turns them on for a terminal only (and never with NO_COLOR). */
  color?: boolean;
}

/** Thrown when the admin port cannot be reached, or answers something that is not a gateway's stats. */
export class AdminUnreachableError extends FleetgateError {
  override name = 'AdminUnreachableError';
}

export function statusCommand(): Command {
  return new Command('status')
    .description(
      "a running gateway's state from its admin port: devices, rates, backlog, data at risk, upstreams, readiness (exit 0 when ready, 1 when not or unreachable)",
    )
    .addOption(
      new Option('--admin <url>', "the gateway's admin address (its --admin), as http://HOST:PORT or HOST:PORT")
        .env('FLEETGATE_ADMIN')
        .default(DEFAULT_ADMIN)
        .argParser(parseAdminUrl),
    )
    .option('--json', 'print the stats, rates and readiness as JSON (one object per sample with --watch)')
    .option('--watch', `refresh every ${WATCH_INTERVAL_MS / 1000} s until Ctrl-C`)
    .action(async (flags: { admin: string; json?: boolean; watch?: boolean }) => {
      // The default is not passed through the parser.
      const admin = parseAdminUrl(flags.admin);
      const color = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR && !flags.json;
      process.exitCode = flags.watch
        ? await watch(admin, flags.json === true, color)
        : await once(admin, flags.json === true, color);
    });
}

/** "http://h:p", "h:p" -> "http://h:p" (no trailing slash). */
export function parseAdminUrl(value: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new InvalidArgumentError(`"${value}" is not an address like http://127.0.0.1:9180 or 127.0.0.1:9180`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new InvalidArgumentError(`"${value}": only http:// and https:// are served`);
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
}

interface Sample {
  stats: GatewayStats;
  readiness: Readiness;
  atMs: number;
}

async function once(admin: string, json: boolean, color: boolean): Promise<number> {
  try {
    const first = await sample(admin);
    await delay(SAMPLE_GAP_MS);
    const second = await sample(admin);
    print(admin, second, first, json, color);
    return second.readiness.ready ? 0 : 1;
  } catch (err: unknown) {
    process.stderr.write(`fleetgate status: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

/** Until Ctrl-C (which ends the process as usual); an unreachable gateway is shown and tried again. */
async function watch(admin: string, json: boolean, color: boolean): Promise<never> {
  let previous: Sample | undefined;
  for (;;) {
    try {
      const current = await sample(admin);
      if (color) process.stdout.write('\x1b[H\x1b[2J');
      print(admin, current, previous, json, color);
      previous = current;
    } catch (err: unknown) {
      const message = err instanceof Error ? err.message : String(err);
      if (json) process.stdout.write(`${JSON.stringify({ admin, error: message })}\n`);
      else process.stdout.write(`${new Date().toLocaleTimeString()} ${message}\n`);
      previous = undefined;
    }
    // The first rates come a second after the first sample, then every WATCH_INTERVAL_MS.
    await delay(previous ? WATCH_INTERVAL_MS : SAMPLE_GAP_MS);
  }
}

function print(admin: string, current: Sample, previous: Sample | undefined, json: boolean, color: boolean): void {
  const before = previous ? { stats: previous.stats, secondsAgo: (current.atMs - previous.atMs) / 1000 } : undefined;
  if (json) {
    const rates = statusRates(current.stats, before);
    process.stdout.write(`${JSON.stringify({ admin, stats: current.stats, rates, readiness: current.readiness })}\n`);
    return;
  }
  process.stdout.write(formatStatus(current.stats, before, current.readiness, { color }));
}

async function sample(admin: string): Promise<Sample> {
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

function statusField(body: unknown): string {
  const status = body && typeof body === 'object' ? (body as { status?: unknown }).status : undefined;
  return typeof status === 'string' ? status : '';
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

// ---- rates ----------------------------------------------------------------------------------------------

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

function sum(record: Record<string, number> | undefined): number {
  return Object.values(record ?? {}).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
}

// ---- formatting -----------------------------------------------------------------------------------------

const STATES: Record<string, { label: string; tone: Tone }> = {
  ready: { label: 'ready', tone: 'ok' },
  connecting: { label: 'connecting', tone: 'warn' },
  idle: { label: 'idle', tone: 'warn' },
  transient_failure: { label: 'failing, retrying', tone: 'bad' },
  shutdown: { label: 'shut down', tone: 'dim' },
};

const WHEN_FULL: Record<string, string> = {
  'drop-oldest': 'the oldest records are dropped (the backend is told which: a gap)',
  'reject-new': 'new messages are refused until the backlog drains (devices keep and resend them)',
};

type Tone = 'ok' | 'warn' | 'bad' | 'dim' | 'bold';
const ANSI: Record<Tone, string> = { ok: '32', warn: '33', bad: '31', dim: '2', bold: '1' };

const LABEL_WIDTH = 14;

/**
 * The summary `fleetgate status` prints: a line per section (gateway, devices, traffic, journal, data at risk,
 * upstreams as a table, commands, readiness). Rates need `previous`; without it they read "—". Every string
 * from the gateway is stripped of control characters, so an upstream name cannot move the cursor.
 */
export function formatStatus(
  stats: GatewayStats,
  previous?: PreviousSample,
  readiness?: Readiness,
  options: FormatOptions = {},
): string {
  const paint = (tone: Tone | undefined, text: string) => (options.color && tone ? `\x1b[${ANSI[tone]}m${text}\x1b[0m` : text);
  const lines: string[] = [];
  const section = (label: string, ...rows: string[]) => {
    rows.forEach((row, i) => lines.push(`${(i === 0 ? label : '').padEnd(LABEL_WIDTH)}${row}`));
  };
  const rates = statusRates(stats, previous);

  // Gateway
  const degraded = readiness?.ready === true && readiness.status === 'degraded';
  const readyWord =
    readiness === undefined
      ? paint('dim', 'readiness not checked')
      : degraded
        ? paint('warn', 'READY, DEGRADED')
        : readiness.ready
          ? paint('ok', 'READY')
          : paint('bad', 'NOT READY');
  section(
    'Gateway',
    `${paint('bold', clean(stats.gatewayId))} · v${clean(stats.version)} · up ${duration(stats.uptimeSeconds * 1000)} · ${readyWord}`,
  );

  // Devices
  const mqtt = stats.ingress?.devicesConnected ?? stats.devicesConnected;
  const sdk = stats.deviceLink?.devicesConnected;
  section(
    'Devices',
    `${int(mqtt + (sdk ?? 0))} online: ${int(mqtt)} MQTT, ${sdk === undefined ? 'SDK listener off' : `${int(sdk)} SDK`}`,
  );

  // Traffic
  section('Traffic', `${rate(rates.messagesIn)} messages/s in, ${rate(rates.recordsAcked)} records/s acked by every upstream`);

  // Journal
  const j = stats.journal;
  const dropped = sum(j.dropped);
  section(
    'Journal',
    `${int(j.rows)} rows, ${bytes(j.payloadBytes)} not yet acknowledged, oldest ${age(j.oldestUnackedAgeMs)}; ${bytes(j.fileBytes)} on disk` +
      (dropped > 0 ? `; ${paint('warn', `${int(dropped)} dropped since start`)}` : ''),
    ...(j.diskFull ? [paint('bad', 'DISK FULL: new messages are refused until space returns')] : []),
  );

  // Data at risk
  const risk = stats.dataAtRisk;
  if (!risk) {
    section('Data at risk', paint('dim', 'not reported by this gateway'));
  } else {
    const soon = risk.secondsUntilFull !== null && risk.secondsUntilFull < 3600;
    const full =
      risk.limitBytes === null
        ? 'no journal limit: it grows until the disk is full, then new messages are refused'
        : `limit ${bytes(risk.limitBytes)}, ${risk.secondsUntilFull === null ? 'not growing' : paint(soon ? 'bad' : undefined, `full in ${duration(risk.secondsUntilFull * 1000)}`)}; ` +
          `then (${risk.whenFull}) ${WHEN_FULL[risk.whenFull] ?? ''}`;
    section(
      'Data at risk',
      `${paint(risk.unackedRows > 0 ? 'warn' : 'ok', bytes(risk.unackedBytes))} in ${int(risk.unackedRows)} rows, oldest ${age(risk.oldestUnackedAgeMs)}; ` +
        `${bytes(risk.inBytesPerSecond)}/s in, ${bytes(risk.outBytesPerSecond)}/s out`,
      full,
    );
  }

  // Upstreams
  lines.push('');
  if (!stats.upstreams) {
    section('Upstreams', paint('dim', 'not reported by this gateway'));
  } else if (stats.upstreams.length === 0) {
    section('Upstreams', 'none configured');
  } else {
    lines.push('Upstreams');
    lines.push(...upstreamTable(stats.upstreams, rates, paint));
  }
  lines.push('');

  // Commands
  const c = stats.commands;
  section(
    'Commands',
    c
      ? `${int(c.received)} received, ${int(c.delivered)} delivered, ${int(c.succeeded)} succeeded, ${int(c.failed)} failed, ${int(c.expired)} expired, ${int(c.rejected)} rejected; ${int(c.stored)} stored`
      : paint('dim', 'not reported'),
  );

  // Readiness
  if (readiness === undefined) section('Readiness', paint('dim', 'not checked'));
  else {
    const head = degraded
      ? paint('warn', 'ready, degraded (some upstream is down; the journal keeps the data)')
      : readiness.ready
        ? paint('ok', 'ready')
        : paint('bad', 'not ready');
    const via =
      readiness.source === 'healthz'
        ? ` (this gateway has no /readyz; /healthz: ${clean(readiness.status) || (readiness.ready ? 'ok' : 'failing')})`
        : readiness.status && !/^((not |un)?ready|degraded)$/i.test(readiness.status)
          ? ` (${clean(readiness.status)})`
          : '';
    section(
      'Readiness',
      head + via,
      ...readiness.checks.map(
        (check) =>
          `${check.ok ? paint('ok', '✓') : paint('bad', '✗')} ${clean(check.name)}${check.detail ? `: ${clean(check.detail)}` : ''}`,
      ),
    );
  }
  return `${lines.join('\n')}\n`;
}

function upstreamTable(
  upstreams: UpstreamStats[],
  rates: StatusRates,
  paint: (tone: Tone | undefined, text: string) => string,
): string[] {
  const header = ['NAME', 'STATE', 'CONNECTED TO', 'PENDING', 'OLDEST', 'IN FLIGHT', 'SENT/S'];
  const rows = upstreams.map((u) => {
    const state = STATES[u.state] ?? { label: clean(String(u.state)), tone: 'dim' as Tone };
    return {
      tone: state.tone,
      cells: [
        clean(u.name),
        state.label,
        clean(u.connectedTo || u.target || '-'),
        `${int(u.pendingRows)} rows, ${bytes(u.pendingBytes)}`,
        age(u.oldestPendingAgeMs),
        int(u.batchesInFlight),
        rate(rates.upstreamsSent[u.name] ?? null),
      ],
      error: u.lastError ? clean(u.lastError) : '',
    };
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r.cells[i]!.length)));
  const line = (cells: string[], tone?: Tone) =>
    '  ' +
    cells
      .map((cell, i) => {
        const padded = i === cells.length - 1 ? cell : cell.padEnd(widths[i]!);
        return i === 1 ? paint(tone, padded) : padded;
      })
      .join('  ');
  const out = [paint('dim', line(header))];
  for (const row of rows) {
    out.push(line(row.cells, row.tone));
    if (row.error) out.push(`    ${paint(row.tone === 'ok' ? 'dim' : 'bad', `last error: ${row.error}`)}`);
  }
  return out;
}

/** A string from the gateway, made safe for a terminal: control characters and bidi overrides become "?". */
function clean(text: string): string {
  return String(text).replace(/[\p{Cc}\u202a-\u202e\u2066-\u2069]/gu, '?');
}

function int(n: number | undefined): string {
  return typeof n === 'number' && Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—';
}

function rate(n: number | null): string {
  if (n === null || !Number.isFinite(n)) return '—';
  if (n === 0) return '0';
  return n >= 100 ? int(n) : n.toFixed(1);
}

/** Decimal units, as the size flags read them (2GB = 2e9 bytes). */
export function bytes(n: number | null | undefined): string {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '—';
  if (Math.abs(n) < 1000) return `${Math.round(n)} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = -1;
  while (Math.abs(v) >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

export function duration(ms: number): string {
  if (!Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

function age(ms: number | null | undefined): string {
  return ms === null || ms === undefined ? 'none' : duration(ms);
}
