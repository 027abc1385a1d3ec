/**
 * The gateway's status page (GET / on the admin port) in headless Chromium, served by a real AdminHttpServer
 * whose /v1/stats answers hand-made stats the tests change between polls: it renders them, follows them live,
 * says when the gateway stops answering, shows hostile strings as text, fits a 375 px phone, and requests
 * nothing but its own origin.
 */
import assert from 'node:assert/strict';
import { ConnectivityState } from '@fleetgate/core';
import * as units from '@fleetgate/core/units';
import { AdminHttpServer, type RouteResponse, type Routes, silentLogger } from '@fleetgate/common';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { formatStatus } from '../../cli/src/status/status-text.ts';
import { statusPageHtml } from '../../gateway/src/admin/status-page.ts';
import type { GatewayStats } from '../../gateway/src/stats.ts';
import { launchBrowser, type BrowserPage, type BrowserSession } from '../support/browser.ts';
import { startInProcess, type InProcessStack } from '../support/in-process.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { TestDevice } from '../support/test-device.ts';
import { gatewayStats, HOSTILE, upstream } from './stats-fixture.ts';

/** Values at and around every boundary the units module has (units, rounding, plurals of nothing). */
const UNIT_CASES: Record<keyof typeof FORMATTERS, Array<number | null | undefined>> = {
  int: [0, 1, 999.5, 1000, 4321, 1_234_567.4, -12, null, undefined, NaN, Infinity],
  rate: [0, 0.04, 0.05, 12.34, 99.94, 99.96, 100, 1234.5, null, NaN],
  bytes: [0, 1, 999, 999.6, 1000, 1049, 99_949, 99_950, 999_999, 1_250_000, 2e9, 5.5e12, 9.99e15, -1500, null, NaN],
  byteRate: [0, 12_000, 2e9, null],
  duration: [
    -5,
    0,
    0.4,
    999,
    999.6,
    1000,
    59_999,
    60_000,
    95_000,
    3_599_999,
    3_600_000,
    172_799_999,
    172_800_000,
    9e9,
    null,
    NaN,
  ],
  age: [null, undefined, 0, 350, 95_000, 199_875_000],
};
const FORMATTERS = {
  int: units.int,
  rate: units.rate,
  bytes: units.bytes,
  byteRate: units.byteRate,
  duration: units.duration,
  age: units.age,
};
/** A JavaScript literal for a case value (JSON has no NaN, Infinity or undefined). */
const literal = (v: number | null | undefined) => (v === undefined ? 'undefined' : v === null ? 'null' : String(v));

/** Polls every 250 ms instead of 2 s, to keep the file short. */
const QUERY = '?interval=250';

/** A fake gateway admin port: the real page, and /v1/stats and /readyz answering whatever the test sets. */
class FakeAdmin {
  stats: GatewayStats = gatewayStats();
  /** What each /v1/stats answers: `stats` unless a test makes each answer differ. */
  answer: () => GatewayStats = () => this.stats;
  /** Overrides the stats answer (a 500, say). */
  statsAnswer: RouteResponse | undefined;
  readyz: RouteResponse | undefined = { status: 200, body: readyzBody('degraded') };
  statsRequests = 0;
  readyzRequests = 0;
  url = '';
  private readonly server: AdminHttpServer;

  constructor() {
    const routes: Routes = {
      'GET /': () => ({ status: 200, contentType: 'text/html; charset=utf-8', text: statusPageHtml() }),
      'GET /v1/stats': () => {
        this.statsRequests++;
        return this.statsAnswer ?? { status: 200, body: this.answer() };
      },
      'GET /readyz': () => {
        this.readyzRequests++;
        return this.readyz ?? { status: 404, body: { error: 'no route for GET /readyz' } };
      },
    };
    this.server = new AdminHttpServer(routes, silentLogger);
  }

  async start(): Promise<this> {
    const address = await this.server.listen({ host: '127.0.0.1', port: 0 });
    this.url = `http://127.0.0.1:${address.port}`;
    return this;
  }

  close(): Promise<void> {
    return this.server.close();
  }
}

/** What the gateway's /readyz answers (admin/readiness.ts): ready or degraded (an upstream down), or unready. */
function readyzBody(status: 'ready' | 'degraded' | 'unready') {
  const journal =
    status === 'unready'
      ? { ok: false, reason: 'the disk refuses journal writes: appends are refused' }
      : { ok: true, reason: 'open, 4321 rows' };
  return {
    ready: status !== 'unready',
    status,
    checks: { process: { ok: true, reason: 'running' }, journal, listeners: { ok: true, reason: 'mqtt 0.0.0.0:1883' } },
    upstreams: {
      primary: { ok: true, state: 'ready', reason: 'streaming to 10.0.0.5:50051' },
      archive:
        status === 'ready'
          ? { ok: true, state: 'ready', reason: 'streaming to 10.0.9.9:50051' }
          : { ok: false, state: 'transient_failure', reason: '4321 rows wait in the journal' },
    },
  };
}

const text = (page: BrowserPage, selector: string) =>
  page.evaluate<string>(`document.querySelector(${JSON.stringify(selector)}).textContent.trim()`);
const polls = (page: BrowserPage) => page.evaluate<number>('Number(document.body.dataset.polls || 0)');
/** Waits until the page has shown `n` more answers than now. */
async function nextPolls(page: BrowserPage, n = 1): Promise<void> {
  const target = (await polls(page)) + n;
  await page.waitForFunction(`Number(document.body.dataset.polls || 0) >= ${target}`);
}
async function waitText(page: BrowserPage, selector: string, expected: string): Promise<void> {
  await page.waitForFunction(
    `(document.querySelector(${JSON.stringify(selector)}) || {}).textContent === ${JSON.stringify(expected)}`,
  );
}

describe('status page', function () {
  this.timeout(20_000);
  let browser: BrowserSession;
  let admin: FakeAdmin;
  const pages: BrowserPage[] = [];
  const dir = useTempDir();

  before(async function () {
    browser = await launchBrowser(this);
  });
  after(() => browser?.close());
  beforeEach(async () => {
    admin = await new FakeAdmin().start();
  });
  afterEach(async () => {
    await Promise.all(pages.splice(0).map((p) => p.close()));
    await admin.close();
  });

  async function open(width?: number, height?: number, url = admin.url): Promise<BrowserPage> {
    const page = await browser.open(`${url}/${QUERY}`, { ...(width ? { width } : {}), ...(height ? { height } : {}) });
    pages.push(page);
    await page.waitForFunction('Number(document.body.dataset.polls || 0) >= 1');
    return page;
  }

  it('status page - shows the devices, the backlog, the data at risk, each upstream, commands and readiness', async () => {
    const page = await open();
    assert.equal(await text(page, '#gw-id'), 'gw-berlin-7');
    assert.equal(await text(page, '#gw-version'), 'v0.1.0');
    assert.equal(await text(page, '#gw-uptime'), '3 h 12 min');
    assert.equal(await text(page, '#dev-total'), '12');
    assert.equal(await text(page, '#dev-mqtt'), '10');
    assert.equal(await text(page, '#dev-sdk'), '2');
    assert.equal(await text(page, '#j-rows'), '4,321');
    assert.equal(await text(page, '#j-oldest'), '1 min 35 s');
    assert.equal(await text(page, '#risk-rows'), '4,321');
    assert.equal(await text(page, '#risk-limit'), '2.0 GB');
    assert.equal(await text(page, '#risk-full'), '2 d 7 h');
    assert.match(await text(page, '#risk-when'), /drop-oldest.*oldest records are dropped/);
    assert.equal(await text(page, '#ready'), 'ready, degraded');
    const checks = await page.evaluate<string[]>(
      `[...document.querySelectorAll('#checks li')].map((li) => li.className + ' ' + li.textContent)`,
    );
    assert.deepEqual(checks, [
      'ok ✓ process: running',
      'ok ✓ journal: open, 4321 rows',
      'ok ✓ listeners: mqtt 0.0.0.0:1883',
      'ok ✓ upstream primary: streaming to 10.0.0.5:50051',
      'bad ✗ upstream archive: 4321 rows wait in the journal',
    ]);
    assert.match(await text(page, '#commands'), /succeeded3/);
    assert.match(await text(page, '#conn'), /^live · updated /);

    const cards = await page.evaluate<Array<{ state: string; name: string; pill: string; error: string | null; text: string }>>(`
      [...document.querySelectorAll('#upstreams .upstream')].map((c) => ({
        state: c.dataset.state,
        name: c.querySelector('.upstream-name').textContent,
        pill: c.querySelector('.upstream-state').textContent,
        error: c.querySelector('.upstream-error') && c.querySelector('.upstream-error').textContent,
        text: c.textContent,
      }))`);
    assert.deepEqual(
      cards.map(({ state, name, pill }) => [name, state, pill]),
      [
        ['primary', 'ready', 'ready'],
        ['archive', 'transient_failure', 'failing, retrying'],
      ],
    );
    assert.equal(cards[0]!.error, null);
    assert.match(cards[1]!.error ?? '', /ECONNREFUSED 10\.0\.9\.9:50051/);
    assert.match(cards[1]!.text, /4,321 rows, 1\.3 MB/);
    assert.match(cards[1]!.text, /10\.0\.9\.9:50051/);
    // Their colours differ: green for ready, red for failing.
    const colours = await page.evaluate<string[]>(
      `[...document.querySelectorAll('#upstreams .upstream-state')].map((p) => getComputedStyle(p).color)`,
    );
    assert.notEqual(colours[0], colours[1]);

    assert.deepEqual(page.problems(), []);
    const origins = new Set(page.requests.map((u) => new URL(u).origin));
    assert.deepEqual([...origins], [admin.url], 'the page requests nothing from anywhere else');
    assert.deepEqual([...new Set(page.requests.map((u) => new URL(u).pathname))].sort(), ['/', '/readyz', '/v1/stats']);
  });

  it('status page - follows the stats live: counters become rates, states and backlogs change', async () => {
    const page = await open();
    // Every answer from now on has 1000 more messages and 500 more rows freed than the last: rates above zero.
    const base = admin.stats;
    let n = 0;
    admin.answer = () => {
      n++;
      return {
        ...base,
        ingress: { ...base.ingress, messages: base.ingress.messages + n * 1000 },
        journal: { ...base.journal, committedRows: base.journal.committedRows + n * 500 },
      };
    };
    await page.waitForFunction(
      `/^[0-9,.]+$/.test(document.getElementById('rate-in').textContent) && Number(document.getElementById('rate-in').textContent.replace(/,/g, '')) > 0`,
    );
    const rateOut = Number((await text(page, '#rate-out')).replace(/,/g, ''));
    assert.ok(rateOut > 0, `records acked per second: ${rateOut}`);

    // The archive upstream recovers and drains; a device connects; the journal empties.
    const next = gatewayStats();
    next.upstreams[1] = upstream('archive', {
      state: ConnectivityState.READY,
      connectedTo: '10.0.9.10:50051',
      pendingRows: 0,
      pendingBytes: 0,
      oldestPendingAgeMs: null,
    });
    next.ingress.devicesConnected = 11;
    next.journal.rows = 0;
    next.journal.oldestUnackedAgeMs = null;
    admin.answer = () => next;
    await waitText(page, '#dev-mqtt', '11');
    await page.waitForFunction(`document.querySelectorAll('#upstreams .upstream[data-state="ready"]').length === 2`);
    assert.equal(
      await page.evaluate<number>(`document.querySelectorAll('.upstream-error').length`),
      0,
      'the cleared error is gone',
    );
    assert.match(await text(page, '#upstreams'), /10\.0\.9\.10:50051/);
    assert.equal(await text(page, '#j-rows'), '0');
    assert.equal(await text(page, '#j-oldest'), 'none');

    admin.readyz = { status: 200, body: readyzBody('ready') };
    await waitText(page, '#ready', 'ready');
    // Not ready any more: the pill and the failing check say so.
    admin.readyz = { status: 503, body: readyzBody('unready') };
    await waitText(page, '#ready', 'not ready');
    assert.match(await text(page, '#checks'), /✗ journal: the disk refuses journal writes/);
    // A 503 from /readyz is what "not ready" looks like; anything else would be a problem.
    assert.deepEqual(
      page.problems().filter((p) => !/status of 503/.test(p)),
      [],
    );
  });

  it('status page - says "connection lost" while the gateway answers 500 or not at all, and recovers', async () => {
    const page = await open();
    admin.statsAnswer = { status: 500, body: { error: 'journal thread gone' } };
    await page.waitForFunction(`document.getElementById('conn').dataset.state === 'lost'`);
    assert.match(await text(page, '#conn'), /connection lost \(\/v1\/stats answered 500: journal thread gone\)/);
    assert.ok(await page.evaluate<boolean>(`document.body.classList.contains('stale')`), 'the old values are dimmed');
    assert.equal(await text(page, '#dev-total'), '12', 'the last values stay');

    admin.statsAnswer = undefined;
    await page.waitForFunction(`document.getElementById('conn').dataset.state === 'live'`);
    assert.ok(!(await page.evaluate<boolean>(`document.body.classList.contains('stale')`)));

    await admin.close();
    await page.waitForFunction(`document.getElementById('conn').dataset.state === 'lost'`);
    assert.match(await text(page, '#conn'), /^connection lost \(Failed to fetch\)/);
    // The 500s and the refused connections are what this test caused; nothing else went wrong.
    assert.deepEqual(
      page.problems().filter((p) => !/status of 500|ERR_CONNECTION_REFUSED/.test(p)),
      [],
    );
  });

  it('status page - shows names and errors with markup in them as text', async () => {
    admin.stats.gatewayId = HOSTILE;
    admin.stats.upstreams[0] = upstream(HOSTILE, {
      state: ConnectivityState.TRANSIENT_FAILURE,
      lastError: HOSTILE,
      connectedTo: HOSTILE,
    });
    admin.readyz = { status: 503, body: { status: HOSTILE, checks: { [HOSTILE]: { ok: false, detail: HOSTILE } } } };
    const page = await open();
    assert.equal(await text(page, '#gw-id'), HOSTILE);
    assert.equal(await text(page, '#upstreams .upstream-name'), HOSTILE);
    assert.equal(await text(page, '#upstreams .upstream-error'), HOSTILE);
    assert.match(await text(page, '#checks'), /<\/script><img src=x onerror=alert\(1\)>/);
    assert.equal(await page.evaluate<number>(`document.querySelectorAll('img').length`), 0, 'no element was made of the text');
    assert.deepEqual(page.dialogs, []);
    assert.ok(!page.requests.some((u) => new URL(u).pathname === '/x'), 'nothing loaded from the text');
    assert.deepEqual(
      page.problems().filter((p) => !/status of 503/.test(p)),
      [],
    );
  });

  it('status page - fits a 375 px phone without scrolling sideways, even with long names and errors', async () => {
    const long = 'x'.repeat(180);
    admin.stats.upstreams[0] = upstream(`upstream-${long}`, {
      connectedTo: `${long}.example:50051`,
      lastError: `14 UNAVAILABLE: ${long}`,
    });
    admin.stats.gatewayId = `gw-${'y'.repeat(100)}`;
    const page = await open(375, 812);
    const overflow = await page.evaluate<{ scroll: number; width: number; wide: string[] }>(`({
      scroll: document.documentElement.scrollWidth,
      width: window.innerWidth,
      wide: [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5).map((e) => e.tagName + '#' + e.id + '.' + e.className),
    })`);
    assert.equal(overflow.width, 375);
    assert.ok(overflow.scroll <= overflow.width, `the page is ${overflow.scroll} px wide at ${overflow.width} px`);
    assert.deepEqual(overflow.wide, []);
    // Cards are one column: each as wide as the screen less the margins.
    const widths = await page.evaluate<number[]>(
      `[...document.querySelectorAll('.card')].map((c) => Math.round(c.getBoundingClientRect().width))`,
    );
    assert.ok(
      widths.every((w) => w >= 300 && w <= 375),
      String(widths),
    );
    assert.deepEqual(page.problems(), []);
  });

  it('status page - a gateway without /readyz, upstreams or data at risk still shows the rest', async () => {
    admin.readyz = undefined;
    const partial: Partial<GatewayStats> = { ...admin.stats };
    delete partial.upstreams;
    delete partial.dataAtRisk;
    admin.stats = partial as GatewayStats;
    const page = await open();
    await nextPolls(page, 2);
    assert.equal(await text(page, '#ready'), 'readiness not reported');
    assert.equal(await text(page, '#upstreams'), 'This gateway does not report its upstreams.');
    assert.equal(await text(page, '#risk-when'), 'This gateway does not report its data at risk.');
    assert.equal(await text(page, '#dev-total'), '12');
    assert.equal(admin.readyzRequests, 1, 'a 404 from /readyz is asked once');
    assert.deepEqual(
      page.problems().filter((p) => !/status of 404/.test(p)),
      [],
    );
  });

  it('status page - its numbers come from the module fleetgate status writes with: the same strings in Chromium as in Node', async () => {
    // The very file the page inlines, imported as a module in a blank page (no CSP there), run on every case.
    const file = createRequire(import.meta.url).resolve('@fleetgate/core/units');
    assert.ok(statusPageHtml().includes(readFileSync(file, 'utf8')), 'the page inlines this file, as it is');
    const page = await browser.open('about:blank');
    pages.push(page);
    const module = `data:text/javascript;base64,${Buffer.from(readFileSync(file, 'utf8')).toString('base64')}`;
    const calls = Object.entries(UNIT_CASES).map(
      ([name, values]) => `[${JSON.stringify(name)}, [${values.map((v) => `m.${name}(${literal(v)})`).join(', ')}]]`,
    );
    const inChromium = await page.evaluate<Record<string, string[]>>(
      `import(${JSON.stringify(module)}).then((m) => Object.fromEntries([${calls.join(', ')}]))`,
    );
    const inNode = Object.fromEntries(
      Object.entries(UNIT_CASES).map(([name, values]) => [
        name,
        values.map((v) => FORMATTERS[name as keyof typeof FORMATTERS](v)),
      ]),
    );
    assert.deepEqual(inChromium, inNode);
    // And what they are, so that a change to the module is a change someone chose.
    assert.deepEqual(inNode.bytes!.slice(0, 14), [
      '0 B',
      '1 B',
      '999 B',
      '1000 B',
      '1.0 kB',
      '1.0 kB',
      '99.9 kB',
      '100.0 kB',
      '1000 kB',
      '1.3 MB',
      '2.0 GB',
      '5.5 TB',
      '9990 TB',
      '-1.5 kB',
    ]);
    assert.deepEqual(inNode.duration!.slice(0, 14), [
      '0 ms',
      '0 ms',
      '0 ms',
      '999 ms',
      '1000 ms',
      '1 s',
      '59 s',
      '1 min 0 s',
      '1 min 35 s',
      '59 min 59 s',
      '1 h 0 min',
      '47 h 59 min',
      '2 d 0 h',
      '104 d 4 h',
    ]);
    assert.deepEqual(page.problems(), []);
  });

  it('status page - shows the same strings as fleetgate status for the same stats', async () => {
    // One upstream per case: its pending rows and bytes, its oldest pending age and its batches in flight.
    const cases: Array<[bytes: number, rows: number, ageMs: number | null]> = [
      [0, 0, null],
      [999, 999, 0],
      [1000, 1000, 999],
      [1_250_000, 4321, 95_000],
      [99_950, 1_234_567, 3_599_999],
      [2e9, 7, 172_800_000],
      [5.5e12, 12, 59_999],
    ];
    admin.stats.upstreams = cases.map(([pendingBytes, pendingRows, oldestPendingAgeMs], i) =>
      upstream(`u${i}`, { pendingBytes, pendingRows, oldestPendingAgeMs, batchesInFlight: pendingRows }),
    );
    admin.stats.uptimeSeconds = 2 * 86_400 + 7 * 3600 + 59;
    admin.stats.journal.fileBytes = 99_950;
    admin.stats.journal.oldestUnackedAgeMs = null;
    const stats = admin.stats;
    const page = await open();
    const cli = formatStatus(stats);
    const line = (label: string) =>
      cli.split('\n').find((l) => l.startsWith(label)) ?? assert.fail(`no ${label} line in:\n${cli}`);

    const cards = await page.evaluate<Array<Record<string, string>>>(`
      [...document.querySelectorAll('#upstreams .upstream')].map((card) =>
        Object.fromEntries([...card.querySelectorAll('dt')].map((dt) => [dt.textContent, dt.nextElementSibling.textContent])))`);
    assert.equal(cards.length, cases.length);
    cases.forEach((_, i) => {
      // The CLI's table row: NAME, STATE, CONNECTED TO, PENDING, OLDEST, IN FLIGHT, SENT/S, two spaces or more apart.
      const cells = line(`  u${i} `).trim().split(/ {2,}/);
      assert.deepEqual(
        [cards[i]!['pending'], cards[i]!['oldest pending'], cards[i]!['batches in flight']],
        cells.slice(3, 6),
        `upstream u${i}`,
      );
    });
    const shown = async (...ids: string[]) => Promise.all(ids.map((id) => text(page, `#${id}`)));
    const [uptime] = await shown('gw-uptime');
    assert.match(line('Gateway'), new RegExp(` · up ${uptime} · `));
    const [rows, payload, oldest, file] = await shown('j-rows', 'j-bytes', 'j-oldest', 'j-file');
    assert.equal(
      line('Journal'),
      `Journal       ${rows} rows, ${payload} not yet acknowledged, oldest ${oldest}; ${file} on disk`,
    );
    const [riskBytes, riskRows, riskOldest, riskIn, riskOut] = await shown(
      'risk-bytes',
      'risk-rows',
      'risk-oldest',
      'risk-in',
      'risk-out',
    );
    assert.equal(
      line('Data at risk'),
      `Data at risk  ${riskBytes} in ${riskRows} rows, oldest ${riskOldest}; ${riskIn} in, ${riskOut} out`,
    );
    const [limit, full] = await shown('risk-limit', 'risk-full');
    assert.match(cli, new RegExp(`limit ${limit.replace('.', '\\.')}, full in ${full}; `));
    assert.deepEqual(page.problems(), []);
  });

  it('status page - served by a real gateway, it follows a device publishing', async () => {
    let stack: InProcessStack | undefined;
    let device: TestDevice | undefined;
    try {
      stack = await startInProcess(dir.path);
      device = new TestDevice('status-page-device', stack.gateway.mqttAddress.port);
      await device.connected();
      await device.publishUpTo(20);
      const page = await open(375, 812, `http://127.0.0.1:${stack.gateway.adminAddress!.port}`);
      await waitText(page, '#gw-id', 'gw-test');
      await waitText(page, '#dev-mqtt', '1');
      await waitText(page, '#total-in', '20');
      await page.waitForFunction(
        `(document.querySelector('#upstreams .upstream[data-state="ready"] .upstream-name') || {}).textContent === 'default'`,
      );
      await waitText(page, '#ready', 'ready');
      // More messages, acknowledged by the cloud-stub: the page follows, and the backlog drains to nothing.
      await device.publishUpTo(70);
      await waitText(page, '#total-in', '70');
      await waitText(page, '#j-rows', '0');
      assert.deepEqual(page.problems(), []);
      assert.ok(await page.evaluate<boolean>('document.documentElement.scrollWidth <= window.innerWidth'));
    } finally {
      await device?.close();
      await stack?.close();
    }
  });
});
