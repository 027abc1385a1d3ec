/**
 * `fleetgate status`: the summary it formats (unit tests of formatStatus and the readiness it reads), and the
 * real command as a child process against a hand-made admin port: its output and exit code when ready, not
 * ready, and unreachable, and its JSON.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { ConnectivityState } from '@fleetgate/core';
import { AdminHttpServer, type RouteResponse, silentLogger } from '@fleetgate/common';
import { parseReadiness, type Readiness } from '../../cli/src/status/readiness.ts';
import { statusRates } from '../../cli/src/status/rates.ts';
import { formatStatus } from '../../cli/src/status/status-text.ts';
import type { GatewayStats } from '../../gateway/src/stats.ts';
import { FLEETGATE_BIN } from '../support/fleetgate-process.ts';
import { freePort } from '../support/free-port.ts';
import { startInProcess, type InProcessStack } from '../support/in-process.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { waitUntil } from '../support/test-device.ts';
import { gatewayStats, upstream } from '../gateway/stats-fixture.ts';

const exec = promisify(execFile);
const READY: Readiness = { ready: true, source: 'readyz', status: 'ready', checks: [] };
const ESC = '\x1b';

/** The stats a second later: 800 more messages in, 300 more rows freed, 200 more records sent to primary. */
function aSecondLater(stats: GatewayStats): GatewayStats {
  const next = structuredClone(stats);
  next.uptimeSeconds += 1;
  next.ingress.messages += 600;
  next.deviceLink!.messages += 200;
  next.journal.committedRows += 800;
  next.journal.rows += 500;
  next.upstreams[0]!.recordsSent += 200;
  return next;
}

describe('fleetgate status - formatStatus', function () {
  this.timeout(5_000);

  it('status - a summary of every section, with rates from the earlier sample', () => {
    const before = gatewayStats();
    const text = formatStatus(aSecondLater(before), { stats: before, secondsAgo: 2 }, READY);
    const line = (label: string) =>
      text.split('\n').find((l) => l.startsWith(label)) ?? assert.fail(`no ${label} line in:\n${text}`);
    assert.equal(line('Gateway'), 'Gateway       gw-berlin-7 · v0.1.0 · up 3 h 12 min · READY');
    assert.equal(line('Devices'), 'Devices       12 online: 10 MQTT, 2 SDK');
    assert.equal(line('Traffic'), 'Traffic       400 messages/s in, 150 records/s acked by every upstream');
    assert.match(line('Journal'), /^Journal +4,821 rows, 1\.3 MB not yet acknowledged, oldest 1 min 35 s; 4\.1 MB on disk$/);
    assert.match(line('Data at risk'), /1\.3 MB in 4,321 rows, oldest 1 min 35 s; 12\.0 kB\/s in, 2\.0 kB\/s out/);
    assert.match(text, /limit 2\.0 GB, full in 2 d 7 h; then \(drop-oldest\) the oldest records are dropped/);
    assert.match(line('Commands'), /6 received, 5 delivered, 3 succeeded, 1 failed, 1 expired, 0 rejected; 1 stored/);
    assert.equal(line('Readiness'), 'Readiness     ready');
    // The upstream table: a header, one row per upstream, the last error under its row.
    const table = text.slice(text.indexOf('Upstreams\n')).split('\n').slice(1, 5);
    assert.match(table[0]!, /^ {2}NAME +STATE +CONNECTED TO +PENDING +OLDEST +IN FLIGHT +SENT\/S$/);
    assert.match(table[1]!, /^ {2}primary +ready +10\.0\.0\.5:50051 +10 rows, 1\.0 kB +350 ms +2 +100$/);
    assert.match(table[2]!, /^ {2}archive +failing, retrying +10\.0\.9\.9:50051 +4,321 rows, 1\.3 MB +1 min 35 s +0 +0$/);
    assert.match(table[3]!, /^ {4}last error: 14 UNAVAILABLE: .*ECONNREFUSED 10\.0\.9\.9:50051$/);
    // Columns line up: STATE starts at the same place in every row.
    assert.equal(new Set(table.slice(0, 3).map((l) => l.search(/ready|failing|STATE/))).size, 1);
    assert.ok(!text.includes(ESC), 'no colours unless asked');
  });

  it('status - no rates from one sample, nor across a restart', () => {
    const stats = gatewayStats();
    assert.match(formatStatus(stats, undefined, READY), /Traffic +— messages\/s in, — records\/s acked/);
    const restarted = aSecondLater(stats);
    restarted.uptimeSeconds = 3;
    restarted.ingress.messages = 10;
    assert.deepEqual(statusRates(restarted, { stats, secondsAgo: 1 }), {
      messagesIn: null,
      recordsAcked: null,
      upstreamsSent: { primary: null, archive: null },
    });
  });

  it('status - not ready, a full disk, drops and a journal about to fill stand out, in colour on a terminal', () => {
    const stats = gatewayStats();
    stats.journal.diskFull = true;
    stats.journal.dropped['journal-full'] = 40;
    stats.dataAtRisk = { ...stats.dataAtRisk, secondsUntilFull: 600, whenFull: 'reject-new' };
    const notReady = parseReadiness(503, {
      status: 'not ready',
      checks: { journal: { ok: false, detail: 'disk full' }, upstreams: 'ok' },
    });
    const plain = formatStatus(stats, undefined, notReady);
    assert.match(plain, /· NOT READY$/m);
    assert.match(plain, /^ +DISK FULL: new messages are refused/m);
    assert.match(plain, /40 dropped since start/);
    assert.match(plain, /full in 10 min 0 s; then \(reject-new\) new messages are refused/);
    assert.match(plain, /^Readiness +not ready\n +✗ journal: disk full\n +✓ upstreams$/m);
    const coloured = formatStatus(stats, undefined, notReady, { color: true });
    assert.ok(coloured.includes(`${ESC}[31mNOT READY${ESC}[0m`));
    assert.ok(coloured.includes(`${ESC}[31mfull in 10 min 0 s${ESC}[0m`));
    assert.ok(coloured.includes(`${ESC}[32mready`), 'the ready upstream in green');
  });

  it('status - strings from the gateway cannot drive the terminal', () => {
    const stats = gatewayStats();
    stats.upstreams[0] = upstream(`evil${ESC}[2J${ESC}]0;pwned\x07`, { lastError: `line\nbreak\r${ESC}[31m` });
    const text = formatStatus(stats, undefined, {
      ready: false,
      source: 'readyz',
      status: `${ESC}[1m`,
      checks: [{ name: `\u202Egnp.exe`, ok: false, detail: '\x00' }],
    });
    assert.ok(!text.includes(ESC));
    assert.ok(!text.includes('\u202E'));
    assert.ok(!text.includes('\r'));
    assert.match(text, /evil\?\[2J\?\]0;pwned\?/);
    assert.match(text, /last error: line\?break\?\?\[31m/);
  });

  it('status - ready but degraded (an upstream down) reads as such, with each upstream check', () => {
    const readiness = parseReadiness(200, {
      ready: true,
      status: 'degraded',
      checks: {
        process: { ok: true, reason: 'running' },
        journal: { ok: true, reason: 'open, 4321 rows' },
        listeners: { ok: true, reason: 'mqtt 0.0.0.0:1883' },
      },
      upstreams: {
        primary: { ok: true, state: 'ready', reason: 'streaming' },
        archive: { ok: false, state: 'transient_failure', reason: '4321 rows wait in the journal' },
      },
    });
    const text = formatStatus(gatewayStats(), undefined, readiness);
    assert.match(text, /· READY, DEGRADED$/m);
    assert.match(
      text,
      /^Readiness +ready, degraded \(some upstream is down; the journal keeps the data\)\n +✓ process: running\n +✓ journal: open, 4321 rows\n +✓ listeners: mqtt 0\.0\.0\.0:1883\n +✓ upstream primary: streaming\n +✗ upstream archive: 4321 rows wait in the journal$/m,
    );
  });

  it('status - a gateway without upstreams, data at risk, an SDK listener or /readyz', () => {
    const partial: Partial<GatewayStats> = { ...gatewayStats(), deviceLink: null };
    delete partial.upstreams;
    delete partial.dataAtRisk;
    const text = formatStatus(partial as GatewayStats, undefined, { ready: true, source: 'healthz', status: 'ok', checks: [] });
    assert.match(text, /^Devices +10 online: 10 MQTT, SDK listener off$/m);
    assert.match(text, /^Data at risk +not reported by this gateway$/m);
    assert.match(text, /^Upstreams +not reported by this gateway$/m);
    assert.match(text, /^Readiness +ready \(this gateway has no \/readyz; \/healthz: ok\)$/m);
  });

  it('status - an age the gateway does not report reads "—", as on the status page; "none" is only for nothing waiting', () => {
    const stats = gatewayStats();
    const old = structuredClone(stats) as unknown as {
      journal: Record<string, unknown>;
      upstreams: Array<Record<string, unknown>>;
    };
    delete old.journal.oldestUnackedAgeMs;
    delete old.upstreams[0]!.oldestPendingAgeMs;
    const text = formatStatus(old as unknown as GatewayStats);
    assert.match(text, /^Journal +.*, oldest —; /m);
    assert.match(text, /^ {2}primary +ready +\S+ +10 rows, 1\.0 kB +— +2 /m);
    stats.journal.oldestUnackedAgeMs = null;
    assert.match(formatStatus(stats), /^Journal +.*, oldest none; /m);
  });

  it('status - reads the checks of /readyz in the shapes it may take', () => {
    assert.deepEqual(parseReadiness(200, { status: 'ready', checks: { journal: true, uplink: 'ok' } }), {
      ready: true,
      source: 'readyz',
      status: 'ready',
      checks: [
        { name: 'journal', ok: true, detail: '' },
        { name: 'uplink', ok: true, detail: '' },
      ],
    });
    assert.deepEqual(
      parseReadiness(503, {
        checks: [
          { name: 'disk', status: 'fail', message: 'full' },
          { name: 'mqtt', ok: true },
        ],
      }).checks,
      [
        { name: 'disk', ok: false, detail: 'full' },
        { name: 'mqtt', ok: true, detail: '' },
      ],
    );
    assert.deepEqual(parseReadiness(503, { checks: { upstreams: { status: 'failing' } } }).checks, [
      { name: 'upstreams', ok: false, detail: 'failing' },
    ]);
    assert.deepEqual(parseReadiness(503, null), { ready: false, source: 'readyz', status: '', checks: [] });
  });
});

/** A hand-made gateway admin port: /v1/stats counts up on every request, /readyz answers what the test sets. */
async function fakeAdmin(readyz: RouteResponse): Promise<{ url: string; close(): Promise<void> }> {
  let stats = gatewayStats();
  const server = new AdminHttpServer(
    {
      'GET /v1/stats': () => {
        stats = aSecondLater(stats);
        return { status: 200, body: stats };
      },
      'GET /readyz': () => readyz,
    },
    silentLogger,
  );
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  return { url: `http://127.0.0.1:${port}`, close: () => server.close() };
}

/** Runs `fleetgate status ...` to completion (not on a terminal: no colours). */
async function status(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return statusWith({}, ...args);
}

async function statusWith(
  extraEnv: NodeJS.ProcessEnv,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env, FLEETGATE_ADMIN: '', ...extraEnv };
  try {
    const { stdout, stderr } = await exec(process.execPath, [FLEETGATE_BIN, 'status', ...args], { timeout: 15_000, env });
    return { code: 0, stdout, stderr };
  } catch (err: unknown) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe('fleetgate status - the command', function () {
  this.timeout(20_000);
  const servers: Array<{ close(): Promise<void> }> = [];
  const dir = useTempDir();
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  it('status - the summary and exit 0 from a ready gateway; exit 1 from one not ready, or unreachable, saying where it looked', async () => {
    const ready = await fakeAdmin({
      status: 200,
      body: { ready: true, status: 'ready', checks: { journal: { ok: true, reason: 'open' } }, upstreams: {} },
    });
    const notReady = await fakeAdmin({
      status: 503,
      body: { ready: false, status: 'unready', checks: { listeners: { ok: false, reason: 'closing' } }, upstreams: {} },
    });
    servers.push(ready, notReady);
    const nobody = await freePort();
    // Three processes at once: each spends most of its time starting.
    const [a, b, c] = await Promise.all([
      status('--admin', ready.url),
      status('--admin', notReady.url.replace('http://', '')),
      status('--admin', `http://127.0.0.1:${nobody}`),
    ]);

    assert.equal(a.code, 0, a.stderr);
    assert.equal(a.stderr, '');
    assert.match(a.stdout, /^Gateway +gw-berlin-7 · v0\.1\.0 · up 3 h 12 min · READY$/m);
    // Two samples a second apart: 800 messages and 300 freed rows between them, over about a second.
    const traffic = /^Traffic +([\d,.]+) messages\/s in, ([\d,.]+) records\/s acked/m.exec(a.stdout) ?? assert.fail(a.stdout);
    const [messages, acked] = [Number(traffic[1]!.replace(/,/g, '')), Number(traffic[2]!.replace(/,/g, ''))];
    assert.ok(messages > 300 && messages <= 800, `messages/s: ${messages}`);
    assert.ok(acked > 100 && acked <= 300, `records/s: ${acked}`);
    assert.match(a.stdout, /^ {2}archive +failing, retrying +10\.0\.9\.9:50051/m);
    assert.match(a.stdout, /^Readiness +ready\n +✓ journal: open$/m);
    assert.ok(!a.stdout.includes(ESC), 'no colours when not on a terminal');

    assert.equal(b.code, 1);
    assert.match(b.stdout, /· NOT READY$/m);
    assert.match(b.stdout, /^Readiness +not ready\n +✗ listeners: closing$/m);

    assert.equal(c.code, 1);
    assert.equal(c.stdout, '');
    assert.equal(
      c.stderr,
      `fleetgate status: cannot reach the gateway's admin port at http://127.0.0.1:${nobody}: ECONNREFUSED\n`,
    );
  });

  it('status - --watch keeps sampling until stopped', async () => {
    const admin = await fakeAdmin({ status: 200, body: { status: 'ready' } });
    servers.push(admin);
    const child = spawn(process.execPath, [FLEETGATE_BIN, 'status', '--watch', '--json', '--admin', admin.url], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      const lines: string[] = [];
      let buffered = '';
      await new Promise<void>((resolve, reject) => {
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
          buffered += chunk;
          const parts = buffered.split('\n');
          buffered = parts.pop() ?? '';
          lines.push(...parts);
          if (lines.length >= 2) resolve();
        });
        void exited.then((code) => reject(new Error(`--watch exited (${code}) after ${lines.length} lines`)));
      });
      const [first, second] = lines.map((l) => JSON.parse(l) as { rates: { messagesIn: number | null } });
      assert.equal(first!.rates.messagesIn, null, 'the first sample has no rate');
      assert.ok(second!.rates.messagesIn! > 0);
    } finally {
      child.kill('SIGINT');
      await exited;
    }
  });

  it('status - against a real gateway: its upstream streaming, ready, exit 0; --json, with FLEETGATE_ADMIN', async () => {
    let stack: InProcessStack | undefined;
    try {
      stack = await startInProcess(dir.path);
      const gateway = stack.gateway;
      await waitUntil(
        'the upstream streams',
        async () => (await gateway.stats()).upstreams[0]?.state === ConnectivityState.READY,
        10_000,
      );
      const admin = `http://127.0.0.1:${gateway.adminAddress!.port}`;
      const [text, json] = await Promise.all([
        status('--admin', admin.replace('http://', '')),
        statusWith({ FLEETGATE_ADMIN: admin }, '--json'),
      ]);

      assert.equal(text.code, 0, text.stdout + text.stderr);
      assert.match(text.stdout, /^Gateway +gw-test · v\S+ · up \d+ (ms|s) · READY$/m);
      assert.match(text.stdout, /^Traffic +0 messages\/s in, 0 records\/s acked/m);
      assert.match(text.stdout, /^ {2}default +ready +127\.0\.0\.1:\d+ +0 rows, 0 B +none +0 +0$/m);
      assert.match(text.stdout, /^Data at risk +0 B in 0 rows, oldest none/m);
      assert.match(text.stdout, /^Readiness +ready\n +✓ process: running/m);

      assert.equal(json.code, 0, json.stderr);
      const out = JSON.parse(json.stdout) as {
        admin: string;
        stats: GatewayStats;
        rates: { messagesIn: number; upstreamsSent: Record<string, number> };
        readiness: Readiness;
      };
      assert.equal(out.admin, admin);
      assert.equal(out.stats.gatewayId, 'gw-test');
      assert.equal(out.stats.upstreams[0]!.state, ConnectivityState.READY);
      assert.deepEqual(out.rates, { messagesIn: 0, recordsAcked: 0, upstreamsSent: { default: 0 } });
      assert.equal(out.readiness.ready, true);
    } finally {
      await stack?.close();
    }
  });
});
