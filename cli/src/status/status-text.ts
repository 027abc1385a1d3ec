/**
 * The text `fleetgate status` prints: a line per section, the upstreams as a table, colours on a terminal. A pure
 * function of the stats, an earlier sample and the readiness, for tests. Numbers are written by
 * @fleetgate/core/units, as on the status page.
 */
import { age, byteRate, bytes, duration, int, rate } from '@fleetgate/core/units';
import type { GatewayStats, UpstreamStats } from '@fleetgate/gateway';
import { statusRates, sum, type PreviousSample, type StatusRates } from './rates.ts';
import type { Readiness } from './readiness.ts';

export interface FormatOptions {
  /** ANSI colours; the command turns them on for a terminal only (and never with NO_COLOR). */
  color?: boolean;
}

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
        `${byteRate(risk.inBytesPerSecond)} in, ${byteRate(risk.outBytesPerSecond)} out`,
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
