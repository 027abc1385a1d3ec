/**
 * The simulator's report: one self-contained HTML file to open from disk, attach to a CI run or mail around.
 * Everything it needs is inside it (uPlot's script and CSS, the data, the page script), and its
 * Content-Security-Policy allows no request at all, so it shows the same offline as online.
 *
 * Order on the page: the verdict and the counts first (what a reader wants in the first second), then the
 * charts over time with faults and phases marked, the latency summary, and the verification per device,
 * failing devices first.
 *
 * Safety: every string from the result is HTML-escaped where it lands in markup. The chart data travels as
 * JSON in a `<script type="application/json">` element with `<`, `>` and `&` written as \u escapes, so a device
 * id like `</script>` cannot end the element. The CSP lets only the report's own inline scripts run (by
 * hash), so even a slip in escaping would not run injected script.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cspHash, inlineText } from '@fleetgate/common';
import { int } from '@fleetgate/core/units';
import type { DeviceVerification, FaultMarker, PhaseMarker, SimResult } from '../result.ts';
import { reportData, type ReportData } from './chart-data.ts';
import { dateTime, duration, esc, jsonForScript, ms, seconds } from './format.ts';

/** Devices listed in full; beyond this the table keeps the failing ones plus the first this many others. */
export const DEVICE_ROWS_LIMIT = 500;

export function renderHtmlReport(result: SimResult): string {
  const assets = reportAssets();
  const data = reportData(result);
  const v = result.verification;
  const verdict = v.ok ? 'PASS' : 'FAIL';
  // The page script goes first: it registers the error hooks before uPlot's script is parsed, and draws on
  // DOMContentLoaded, after every inline script has run.
  const scripts = [assets.pageScript, assets.uplotJs];
  const csp = [
    "default-src 'none'",
    `script-src ${scripts.map(cspHash).join(' ')}`,
    "style-src 'unsafe-inline'",
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="${esc(csp)}">
<title>${esc(`${verdict} · ${result.name} · fleetgate sim`)}</title>
<style>${inlineText(assets.uplotCss, 'style')}</style>
<style>${inlineText(assets.reportCss, 'style')}</style>
</head>
<body>
<main>
${header(result)}
${chartsSection(result, data)}
${latencySection(result)}
${verificationSection(result)}
</main>
<footer>fleetgate sim report · self-contained: it loads nothing from anywhere</footer>
<script type="application/json" id="report-data">${jsonForScript(data)}</script>
${scripts.map((s) => `<script>${s}</script>`).join('\n')}
</body>
</html>
`;
}

// ---------------------------------------------------------------------------------------------------------
// Sections

function header(result: SimResult): string {
  const v = result.verification;
  const verdict = v.ok ? 'PASS' : 'FAIL';
  const durationS = (result.endedAt - result.startedAt) / 1000;
  const reasons = [
    v.lost > 0 ? `${int(v.lost)} acked lost` : '',
    v.duplicates > 0 ? `${int(v.duplicates)} duplicated` : '',
    v.outOfOrder > 0 ? `${int(v.outOfOrder)} out of order` : '',
  ].filter(Boolean);
  const why = v.ok
    ? 'every acked message arrived, once, in order'
    : reasons.length > 0
      ? reasons.join(' · ')
      : 'verification failed';
  const tiles: Array<[string, number, 'bad' | 'warn' | '']> = [
    ['sent', v.sent, ''],
    ['acked', v.acked, ''],
    ['arrived', v.arrived, ''],
    ['lost', v.lost, v.lost > 0 ? 'bad' : ''],
    ['duplicates', v.duplicates, v.duplicates > 0 ? 'bad' : ''],
    ['redelivered', v.redelivered, ''],
    ['out of order', v.outOfOrder, v.outOfOrder > 0 ? 'bad' : ''],
    ['gaps', v.gaps.records, v.gaps.records > 0 ? 'warn' : ''],
  ];
  return `<header class="top">
  <div class="title">
    <p class="kicker">fleetgate sim</p>
    <h1>${esc(result.name)}</h1>
    <p class="when">${esc(dateTime(result.startedAt))} → ${esc(dateTime(result.endedAt))} · <strong>${esc(duration(durationS))}</strong>
      · ${int(v.devices)} devices · sampled every ${int(result.sampleMs)} ms</p>
  </div>
  <div id="verdict" class="verdict ${v.ok ? 'pass' : 'fail'}">
    <span class="verdict-word">${verdict}</span>
    <span class="verdict-why">${esc(why)}</span>
  </div>
</header>
<section class="counts" aria-label="key counts">
${tiles.map(([label, n, cls]) => `  <div class="count ${cls}" data-count="${esc(label)}"><span class="n">${int(n)}</span><span class="label">${esc(label)}</span></div>`).join('\n')}
</section>
<section class="card settings">
  <h2>Settings</h2>
  ${settingsTable(result.settings)}
</section>`;
}

function settingsTable(settings: Record<string, unknown>): string {
  const entries = Object.entries(settings);
  if (entries.length === 0) return '<p class="muted">none given</p>';
  const rows = entries.map(([key, value]) => `<tr><th scope="row">${esc(key)}</th><td>${esc(settingText(value))}</td></tr>`);
  return `<div class="scroll"><table class="kv">${rows.join('')}</table></div>`;
}

function settingText(value: unknown): string {
  if (value === undefined || value === null) return '—';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  try {
    const text = JSON.stringify(value);
    return text.length > 300 ? `${text.slice(0, 300)}…` : text;
  } catch {
    return String(value);
  }
}

function chartsSection(result: SimResult, data: ReportData): string {
  const faults = [...result.faults].sort((a, b) => a.t - b.t);
  const faultList =
    faults.length === 0
      ? '<p class="markers muted">no faults injected</p>'
      : `<ul class="markers">${faults.map((f) => `<li><span class="swatch"></span>${esc(seconds(f.t))} <strong>${esc(f.kind)}</strong></li>`).join('')}</ul>`;
  const empty = result.timeline.length === 0 ? '<p class="notice">The run recorded no samples: the charts are empty.</p>' : '';
  const cards = data.charts.map(
    (c) => `<figure class="card chart-card" id="card-${esc(c.id)}">
  <figcaption><h2>${esc(c.title)}</h2><span class="unit">${esc(c.note)}</span></figcaption>
  <div class="chart" id="chart-${esc(c.id)}"></div>
  ${faultList}
</figure>`,
  );
  return `<section class="timeline">
${empty}
<div class="charts">
${cards.join('\n')}
</div>
${eventsTable(result.phases, faults)}
</section>`;
}

function eventsTable(phases: PhaseMarker[], faults: FaultMarker[]): string {
  const events = [
    ...phases.map((p) => ({ t: p.from, cls: 'phase', what: `phase ${p.name}`, detail: `${seconds(p.from)} – ${seconds(p.to)}` })),
    ...faults.map((f) => ({ t: f.t, cls: 'fault', what: f.kind, detail: f.detail })),
  ].sort((a, b) => a.t - b.t);
  if (events.length === 0) return '';
  const rows = events.map(
    (e) => `<tr class="${e.cls}"><td class="num">${esc(seconds(e.t))}</td><td>${esc(e.what)}</td><td>${esc(e.detail)}</td></tr>`,
  );
  return `<section class="card events">
  <h2>Phases and faults</h2>
  <div class="scroll"><table><thead><tr><th class="num">at</th><th>what</th><th>detail</th></tr></thead><tbody>${rows.join('')}</tbody></table></div>
</section>`;
}

function latencySection(result: SimResult): string {
  const l = result.latency;
  const cells: Array<[string, string]> = [
    ['p50', ms(l.p50)],
    ['p90', ms(l.p90)],
    ['p99', ms(l.p99)],
    ['p99.9', ms(l.p999)],
    ['max', ms(l.max)],
    ['count', int(l.count)],
  ];
  return `<section class="card latency">
  <h2>Latency <span class="unit">device send → commit at the cloud, ms</span></h2>
  <div class="scroll"><table id="latency-summary"><thead><tr>${cells.map(([k]) => `<th class="num">${k}</th>`).join('')}</tr></thead>
  <tbody><tr>${cells.map(([, val]) => `<td class="num">${esc(val)}</td>`).join('')}</tr></tbody></table></div>
</section>`;
}

function verificationSection(result: SimResult): string {
  const v = result.verification;
  return `<section class="card verification">
  <h2>Verification</h2>
  <p>${int(v.devices)} devices. Lost counts acked messages only; ${int(v.unackedMissing)} sent but never acked messages did not
    arrive either (QoS 0, or in flight at the end), which is allowed. Redelivered copies of messages in flight at a connection drop
    are allowed by QoS 1.</p>
  <div class="split">
    ${gapsTable(v.gaps)}
    ${examplesList(v.examples)}
  </div>
  ${devicesTable(v.perDevice)}
</section>`;
}

function gapsTable(gaps: SimResult['verification']['gaps']): string {
  const reasons = Object.entries(gaps.byReason).sort((a, b) => b[1] - a[1]);
  const body =
    reasons.length === 0
      ? `<p class="muted">No gaps declared by the gateway.</p>`
      : `<div class="scroll"><table id="gaps"><thead><tr><th>reason</th><th class="num">records</th></tr></thead><tbody>${reasons
          .map(([reason, n]) => `<tr><td>${esc(reason)}</td><td class="num">${int(n)}</td></tr>`)
          .join('')}</tbody></table></div>`;
  return `<div class="gaps">
    <h3>Gaps <span class="unit">${int(gaps.records)} records in ${int(gaps.ranges)} ranges, declared lost by the gateway</span></h3>
    ${body}
  </div>`;
}

function examplesList(examples: SimResult['verification']['examples']): string {
  const kinds: Array<[string, string[]]> = [
    ['lost', examples.lost],
    ['duplicates', examples.duplicates],
    ['out of order', examples.outOfOrder],
  ];
  const items = kinds.map(
    ([kind, ids]) =>
      `<li><strong>${esc(kind)}</strong>: ${ids.length === 0 ? '<span class="muted">none</span>' : ids.map((id) => `<code>${esc(id)}</code>`).join(' ')}</li>`,
  );
  return `<div class="examples">
    <h3>Examples <span class="unit">deviceId#n, up to 20 of each</span></h3>
    <ul id="examples">${items.join('')}</ul>
  </div>`;
}

function failing(d: DeviceVerification): boolean {
  return d.lost > 0 || d.duplicates > 0 || d.outOfOrder > 0;
}

function devicesTable(perDevice: DeviceVerification[]): string {
  // Worst first: a reader scrolls to the device that lost the most, not to the one that sorts first.
  const bad = perDevice
    .filter(failing)
    .sort((a, b) => b.lost - a.lost || b.duplicates - a.duplicates || b.outOfOrder - a.outOfOrder);
  const good = perDevice.filter((d) => !failing(d));
  const shownGood = perDevice.length > DEVICE_ROWS_LIMIT ? good.slice(0, DEVICE_ROWS_LIMIT) : good;
  const omitted = good.length - shownGood.length;
  const cell = (n: number, warn: boolean): string => `<td class="num${warn && n > 0 ? ' bad' : ''}">${int(n)}</td>`;
  const row = (d: DeviceVerification): string => {
    const fail = failing(d);
    return `<tr class="${fail ? 'fail' : 'ok'}"><td class="status">${fail ? 'FAIL' : 'ok'}</td><td class="device">${esc(d.deviceId)}</td><td>${esc(d.protocol)}</td>${cell(d.sent, false)}${cell(d.acked, false)}${cell(d.arrived, false)}${cell(d.lost, true)}${cell(d.duplicates, true)}${cell(d.redelivered, false)}${cell(d.outOfOrder, true)}</tr>`;
  };
  const note =
    omitted > 0
      ? `<p class="notice" id="devices-omitted">${int(omitted)} passing devices omitted: showing the ${int(bad.length)} failing and the first ${int(shownGood.length)} passing of ${int(perDevice.length)}.</p>`
      : '';
  return `<h3>Per device <span class="unit">${int(bad.length)} failing of ${int(perDevice.length)}</span></h3>
  ${note}
  <div class="scroll"><table id="devices"><thead><tr><th></th><th>device</th><th>protocol</th><th class="num">sent</th><th class="num">acked</th><th class="num">arrived</th><th class="num">lost</th><th class="num">duplicates</th><th class="num">redelivered</th><th class="num">out of order</th></tr></thead>
  <tbody>${[...bad, ...shownGood].map(row).join('\n')}</tbody></table></div>`;
}

// ---------------------------------------------------------------------------------------------------------
// Assets

interface ReportAssets {
  uplotJs: string;
  uplotCss: string;
  pageScript: string;
  reportCss: string;
}

let assetsCache: ReportAssets | undefined;

/** Read once per process: uPlot from node_modules, the page's own script and CSS from next to this file. */
function reportAssets(): ReportAssets {
  if (!assetsCache) {
    const require = createRequire(import.meta.url);
    const read = (path: string | URL): string => readFileSync(path, 'utf8');
    assetsCache = {
      uplotJs: inlineText(read(require.resolve('uplot/dist/uPlot.iife.min.js')), 'script'),
      uplotCss: read(require.resolve('uplot/dist/uPlot.min.css')),
      pageScript: inlineText(read(new URL('../../assets/report-script.js', import.meta.url)), 'script'),
      reportCss: read(new URL('../../assets/report.css', import.meta.url)),
    };
  }
  return assetsCache;
}
