/**
 * The simulator's HTML report, opened from disk in headless Chromium: the charts are really drawn (read back
 * from the canvas pixels, a check shown to fail on empty charts), faults are marked, the verdict and the
 * per-device table say what failed, and the page requests nothing and cannot be broken by a device id.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DEVICE_ROWS_LIMIT, renderHtmlReport } from '../../simulators/src/report/html.ts';
import type { DeviceVerification, LatencySample, SimResult, TimelineSample } from '../../simulators/src/result.ts';
import { launchBrowser, type BrowserPage, type BrowserSession } from '../support/browser.ts';
import { useTempDir } from '../support/temp-dir.ts';

const EVIL = '</script><img src=x onerror=alert(1)>';
const START = Date.UTC(2025, 2, 14, 9, 30, 0);

/**
 * A 60 s run of 30 devices at 10 msg/s each: warm-up, then load with the gateway killed at t=20 and back at
 * t=23 (nothing acked while it is down, its backlog unknown, a burst after), and dev-017 lost 3 acked messages.
 */
function fixture(): SimResult {
  const timeline: TimelineSample[] = [];
  let sent = 0;
  let acked = 0;
  let committed = 0;
  for (let t = 1; t <= 60; t++) {
    const down = t > 20 && t <= 23;
    const connected = t === 1 ? 14 : down ? 0 : t === 24 ? 12 : t === 25 ? 26 : 30;
    const sentRate = down ? 150 : Math.round(300 + 12 * Math.sin(t / 2));
    const ackedRate = down ? 0 : t === 24 || t === 25 ? 620 : Math.round(300 + 12 * Math.sin(t / 2 - 0.8));
    const committedRate = down ? 0 : t === 24 || t === 25 ? 600 : Math.round(300 + 10 * Math.sin(t / 2 - 1.4));
    sent += sentRate;
    acked += ackedRate;
    committed += committedRate;
    const backlog = down ? null : t === 24 ? 1800 : t === 25 ? 900 : t === 26 ? 240 : 40 + (t % 7) * 6;
    timeline.push({
      t,
      sent,
      acked,
      committed: t === 40 ? null : committed,
      sentRate,
      ackedRate,
      committedRate: t === 40 ? null : committedRate,
      backlog,
      connected,
    });
  }
  const latencyOverTime: LatencySample[] = [];
  for (let t = 0; t < 60; t++) {
    if (t > 20 && t < 23) continue; // nothing committed while the gateway was down
    const late = t >= 23 && t <= 26;
    latencyOverTime.push({
      t,
      p50: late ? 1400 - (t - 23) * 300 : 11 + (t % 5),
      p99: late ? 3100 - (t - 23) * 600 : 38 + (t % 9) * 2,
      max: late ? 3900 - (t - 23) * 700 : 70 + (t % 11) * 5,
      count: 300,
    });
  }
  const perDevice: DeviceVerification[] = [];
  for (let i = 0; i < 30; i++) {
    const deviceId = `dev-${String(i).padStart(3, '0')}`;
    const lost = deviceId === 'dev-017' ? 3 : 0;
    perDevice.push({
      deviceId,
      protocol: i % 3 === 0 ? 'sdk' : 'mqtt',
      sent: 600,
      acked: 596,
      arrived: 596 - lost,
      lost,
      duplicates: 0,
      redelivered: i % 4 === 0 ? 2 : 0,
      outOfOrder: 0,
    });
  }
  const sum = (key: keyof Omit<DeviceVerification, 'deviceId' | 'protocol'>): number => perDevice.reduce((n, d) => n + d[key], 0);
  return {
    name: 'kill-gateway-under-load',
    startedAt: START,
    endedAt: START + 60_000,
    settings: {
      devices: 30,
      rate: '10/s',
      qos: 1,
      duration: '60s',
      faults: ['kill-gateway@20s'],
      gateway: { journal: 'sqlite', batch: 256 },
    },
    sampleMs: 1000,
    timeline,
    latencyOverTime,
    phases: [
      { name: 'warm-up', from: 0, to: 10 },
      { name: 'load', from: 10, to: 60 },
    ],
    faults: [{ t: 20, kind: 'kill-gateway', detail: 'SIGKILL to the gateway, restarted after 3 s' }],
    latency: { p50: 12.4, p90: 31.2, p99: 1480, p999: 3350, max: 3920, count: 17_880 },
    verification: {
      devices: 30,
      sent: sum('sent'),
      acked: sum('acked'),
      arrived: sum('arrived'),
      lost: sum('lost'),
      duplicates: 0,
      redelivered: sum('redelivered'),
      outOfOrder: 0,
      unackedMissing: 120,
      gaps: { ranges: 0, records: 0, byReason: {} },
      examples: { lost: ['dev-017#233', 'dev-017#234', 'dev-017#235'], duplicates: [], outOfOrder: [] },
      perDevice,
      ok: false,
    },
  };
}

function emptyRun(): SimResult {
  const result = fixture();
  return { ...result, timeline: [], latencyOverTime: [], faults: [], phases: [] };
}

interface ChartProbe {
  id: string;
  canvasWidth: number;
  /** Pixels not transparent, of any colour: axes, grid and ticks count too. */
  ink: number;
  /** Pixels of each series' colour (its line), and whether the series had any value to draw. */
  series: Array<{ label: string; pixels: number; hasData: boolean }>;
  /** Pixels of the fault markers' red. */
  faultPixels: number;
  /** The labels the draw hook wrote on the canvas. */
  faultLabels: string;
  /** The fault list under the chart. */
  markerText: string;
}

/**
 * Reads every chart's canvas back and counts, per series, the (nearly) opaque pixels within a small distance of the
 * series' colour (taken from the page's own data), and the same for the fault marker's red. Axes and grid are
 * black and grey, so a chart without plotted data has ink but no series pixels: the empty-timeline test below
 * shows exactly that.
 */
const PROBE_CHARTS = `(() => {
  const data = JSON.parse(document.getElementById('report-data').textContent);
  const rgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  return data.charts.map((spec) => {
    const card = document.getElementById('card-' + spec.id);
    const root = card.querySelector('.uplot');
    const canvas = root.querySelector('canvas');
    const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    const targets = spec.series.map((s) => ({ label: s.label, rgb: rgb(s.color), pixels: 0, hasData: s.values.some((v) => v !== null) }));
    const fault = { rgb: rgb(data.faultColor), pixels: 0 };
    const near = (i, c) => Math.abs(px[i] - c[0]) + Math.abs(px[i + 1] - c[1]) + Math.abs(px[i + 2] - c[2]) <= 40;
    let ink = 0;
    for (let i = 0; i < px.length; i += 4) {
      if (px[i + 3] === 0) continue;
      ink++;
      if (px[i + 3] < 230) continue;
      for (const t of targets) if (near(i, t.rgb)) t.pixels++;
      if (near(i, fault.rgb)) fault.pixels++;
    }
    return {
      id: spec.id,
      canvasWidth: canvas.width,
      ink,
      series: targets.map(({ label, pixels, hasData }) => ({ label, pixels, hasData })),
      faultPixels: fault.pixels,
      faultLabels: root.dataset.faultLabels ?? '',
      markerText: card.querySelector('.markers').textContent,
    };
  });
})()`;

/** A series line 2 px wide across a plot at least 250 px wide leaves far more than this many pixels. */
const MIN_SERIES_PIXELS = 150;
const MIN_FAULT_PIXELS = 150;

describe('simulators - HTML report', function () {
  it('report - escapes a device id (and every other string) that tries to close the script element, in markup and JSON', function () {
    this.timeout(5_000);
    const result = fixture();
    result.name = EVIL;
    result.settings = { [EVIL]: EVIL };
    result.faults = [{ t: 20, kind: EVIL, detail: EVIL }];
    result.phases = [{ name: EVIL, from: 0, to: 60 }];
    result.verification.perDevice[3]!.deviceId = EVIL;
    result.verification.examples.lost = [`${EVIL}#1`];
    result.verification.gaps.byReason = { [EVIL]: 1 };
    const html = renderHtmlReport(result);

    assert.ok(!html.includes('<img'), 'an <img> tag in the markup');
    assert.ok(!html.includes(EVIL), 'the raw device id in the markup');
    assert.ok(html.includes('&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;'), 'the escaped device id in the markup');
    // The embedded JSON still parses back to the same strings.
    const json = /<script type="application\/json" id="report-data">(.*?)<\/script>/s.exec(html)?.[1];
    assert.ok(json, 'the report data element');
    assert.ok(!json.includes('<'), 'a < in the embedded JSON');
    assert.equal((JSON.parse(json) as { faults: Array<{ kind: string }> }).faults[0]!.kind, EVIL);
  });

  it('report - lists every failing device and the first 500 others of a large fleet, saying how many were left out', function () {
    this.timeout(5_000);
    const result = fixture();
    const perDevice: DeviceVerification[] = [];
    for (let i = 0; i < 1200; i++) {
      const bad = i === 5 || i === 700 || i === 1100;
      perDevice.push({
        deviceId: `d${i}`,
        protocol: 'mqtt',
        sent: 10,
        acked: 10,
        arrived: bad ? 9 : 10,
        lost: bad ? 1 : 0,
        duplicates: 0,
        redelivered: 0,
        outOfOrder: 0,
      });
    }
    perDevice[1100]!.lost = 4;
    result.verification.perDevice = perDevice;
    const html = renderHtmlReport(result);

    const rows = [...html.matchAll(/<tr class="(fail|ok)"><td class="status">[^<]*<\/td><td class="device">([^<]*)<\/td>/g)].map(
      (m) => `${m[1]} ${m[2]}`,
    );
    assert.equal(rows.length, 3 + DEVICE_ROWS_LIMIT);
    assert.deepEqual(rows.slice(0, 4), ['fail d1100', 'fail d5', 'fail d700', 'ok d0']);
    assert.equal(rows.at(-1), 'ok d500');
    assert.match(html, /697 passing devices omitted: showing the 3 failing and the first 500 passing of 1,200\./);
  });

  describe('in headless Chromium', function () {
    const dir = useTempDir('fleetgate-report-');
    let browser: BrowserSession | undefined;

    before(async function () {
      this.timeout(60_000);
      browser = await launchBrowser(this);
    });

    after(async function () {
      this.timeout(20_000);
      await browser?.close();
    });

    /** Renders `result` into a file, opens it and waits until the page says it drew its charts (or broke). */
    async function openReport(result: SimResult, width?: number): Promise<{ page: BrowserPage; url: string; html: string }> {
      const html = renderHtmlReport(result);
      const file = join(dir.path, 'report.html');
      writeFileSync(file, html);
      const url = pathToFileURL(file).href;
      if (!browser) throw new Error('no browser: the before hook failed');
      const page = await browser.open(url, width ? { width, height: 844 } : {});
      await page.waitFor('body[data-charts], body[data-error]');
      const error = await page.evaluate<string | null>('document.body.dataset.error ?? null');
      assert.equal(error, null, `the page's script failed: ${error}`);
      return { page, url, html };
    }

    it('report - draws four charts with data and the fault marked, a FAIL verdict, the failing device first, and requests nothing but itself', async function () {
      this.timeout(30_000);
      const { page, url } = await openReport(fixture());

      assert.equal(await page.evaluate('document.body.dataset.charts'), '4');
      const charts = await page.evaluate<ChartProbe[]>(PROBE_CHARTS);
      assert.deepEqual(
        charts.map((c) => c.id),
        ['throughput', 'latency', 'backlog', 'connected'],
      );
      for (const chart of charts) {
        for (const s of chart.series) {
          assert.ok(s.hasData, `${chart.id}/${s.label}: the fixture has data for it`);
          assert.ok(s.pixels >= MIN_SERIES_PIXELS, `${chart.id}/${s.label}: only ${s.pixels} pixels of its colour on the canvas`);
        }
        assert.ok(
          chart.faultPixels >= MIN_FAULT_PIXELS,
          `${chart.id}: only ${chart.faultPixels} pixels of the fault marker's colour`,
        );
        assert.equal(chart.faultLabels, 'kill-gateway', `${chart.id}: fault labels drawn on the canvas`);
        assert.match(chart.markerText, /20\.0 s\s*kill-gateway/, `${chart.id}: the fault listed under the chart`);
      }

      const verdict = await page.evaluate<{ word: string; cls: string; counts: Record<string, string> }>(`(() => {
        const v = document.getElementById('verdict');
        const counts = {};
        for (const el of document.querySelectorAll('[data-count]')) counts[el.dataset.count] = el.querySelector('.n').textContent;
        return { word: v.querySelector('.verdict-word').textContent, cls: v.className, counts };
      })()`);
      assert.equal(verdict.word, 'FAIL');
      assert.match(verdict.cls, /\bfail\b/);
      assert.match(await page.evaluate<string>(`document.getElementById('verdict').textContent`), /3 acked lost/);
      assert.deepEqual(verdict.counts, {
        sent: '18,000',
        acked: '17,880',
        arrived: '17,877',
        lost: '3',
        duplicates: '0',
        redelivered: '16',
        'out of order': '0',
        gaps: '0',
      });

      const rows = await page.evaluate<Array<{ cls: string; cells: string[] }>>(
        `[...document.querySelectorAll('#devices tbody tr')].map((tr) => ({ cls: tr.className, cells: [...tr.cells].map((td) => td.textContent) }))`,
      );
      assert.equal(rows.length, 30);
      assert.deepEqual(rows[0], { cls: 'fail', cells: ['FAIL', 'dev-017', 'mqtt', '600', '596', '593', '3', '0', '0', '0'] });
      assert.deepEqual(
        rows.slice(1).map((r) => r.cls),
        Array(29).fill('ok'),
      );
      assert.equal(await page.evaluate(`document.querySelector('#devices tr.fail td:nth-child(7)').className`), 'num bad');
      assert.deepEqual(await page.evaluate(`[...document.querySelectorAll('#latency-summary td')].map((td) => td.textContent)`), [
        '12.4',
        '31.2',
        '1,480',
        '3,350',
        '3,920',
        '17,880',
      ]);
      assert.match(
        await page.evaluate<string>(`document.getElementById('examples').textContent`),
        /dev-017#233 dev-017#234 dev-017#235/,
      );

      assert.deepEqual(page.problems(), []);
      assert.deepEqual(page.requests, [url]);

      const screenshot = process.env.REPORT_SCREENSHOT;
      if (screenshot) await page.screenshot(screenshot as `${string}.png`);
      await page.close();
    });

    it('report - the pixel check finds ink but no plotted data on the charts of a run without samples', async function () {
      this.timeout(30_000);
      const { page } = await openReport(emptyRun());

      assert.equal(await page.evaluate('document.body.dataset.charts'), '4');
      const charts = await page.evaluate<ChartProbe[]>(PROBE_CHARTS);
      assert.equal(charts.length, 4);
      for (const chart of charts) {
        // The canvas is not blank (axes, grid, tick labels), so counting any ink would not have told.
        assert.ok(chart.ink > 1000, `${chart.id}: ${chart.ink} opaque pixels`);
        for (const s of chart.series) assert.equal(s.pixels, 0, `${chart.id}/${s.label}: pixels of its colour with no data`);
        assert.equal(chart.faultPixels, 0);
        assert.equal(chart.faultLabels, '');
      }
      assert.match(await page.evaluate<string>('document.body.textContent'), /recorded no samples/);
      assert.deepEqual(page.problems(), []);
      await page.close();
    });

    it("report - charts fit a phone's width without sideways scrolling and follow the window when it widens", async function () {
      this.timeout(30_000);
      const { page } = await openReport(fixture(), 390);

      const narrow = await page.evaluate<{ scrollWidth: number; canvases: number[] }>(
        `({ scrollWidth: document.documentElement.scrollWidth, canvases: [...document.querySelectorAll('.uplot canvas')].map((c) => c.getBoundingClientRect().width) })`,
      );
      assert.ok(narrow.scrollWidth <= 390, `the page is ${narrow.scrollWidth} px wide on a 390 px screen`);
      assert.equal(narrow.canvases.length, 4);
      for (const width of narrow.canvases) assert.ok(width >= 280 && width <= 370, `a chart ${width} px wide on a 390 px screen`);
      for (const chart of await page.evaluate<ChartProbe[]>(PROBE_CHARTS)) {
        for (const s of chart.series)
          assert.ok(s.pixels >= MIN_SERIES_PIXELS / 2, `${chart.id}/${s.label}: ${s.pixels} pixels on a phone`);
      }
      const screenshot = process.env.REPORT_SCREENSHOT;
      if (screenshot) await page.screenshot(screenshot.replace(/\.png$/, '-phone.png') as `${string}.png`);

      await page.setViewport(1280, 900);
      await page.waitForFunction(
        `[...document.querySelectorAll('.uplot canvas')].every((c) => c.getBoundingClientRect().width > 500)`,
      );
      assert.deepEqual(page.problems(), []);
      await page.close();
    });

    it('report - a device id that tries to close the script element stays text in the page', async function () {
      this.timeout(30_000);
      const result = fixture();
      result.name = EVIL;
      result.faults = [{ t: 20, kind: EVIL, detail: EVIL }];
      result.verification.perDevice[17]!.deviceId = EVIL;
      const { page } = await openReport(result);

      const dom = await page.evaluate<{ images: number; title: string; failingDevice: string; labels: string[] }>(`({
        images: document.querySelectorAll('img').length,
        title: document.querySelector('h1').textContent,
        failingDevice: document.querySelector('#devices tr.fail td.device').textContent,
        labels: [...document.querySelectorAll('.uplot')].map((el) => el.dataset.faultLabels),
      })`);
      assert.deepEqual(dom, { images: 0, title: EVIL, failingDevice: EVIL, labels: [EVIL, EVIL, EVIL, EVIL] });
      assert.equal(await page.evaluate('document.body.dataset.charts'), '4');
      assert.deepEqual(page.dialogs, []);
      assert.deepEqual(page.problems(), []);
      await page.close();
    });
  });
});
