/**
 * The admin surface for operators, from hand-made stats: the data-at-risk tracker, /metrics (parsed with a
 * Prometheus text-format parser), /readyz. End to end with a running gateway: test/e2e/metrics-e2e.test.ts.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { ConnectivityState, type HostPort } from '@fleetgate/core';
import { AdminHttpServer, silentLogger } from '@fleetgate/common';
import { DataAtRiskTracker, type DataAtRiskSample } from '../../gateway/src/admin/data-at-risk.ts';
import { GatewayMetrics } from '../../gateway/src/admin/metrics.ts';
import { gatewayAdminRoutes } from '../../gateway/src/admin/routes.ts';
import type { ReadinessReport } from '../../gateway/src/admin/readiness.ts';
import { DEVICE_LINK_REFUSALS, MQTT_REFUSALS as REFUSAL_REASONS } from '../../gateway/src/refusals.ts';
import type { JournalLimits } from '../../gateway/src/journal/journal.ts';
import type { GatewayStats, UpstreamStats } from '../../gateway/src/stats.ts';
import { gatewayStats as fixtureStats, upstream as fixtureUpstream } from './stats-fixture.ts';
import { textSample } from '../support/prometheus-text.ts';

/** One metric family as parse-prometheus-text-format gives it (it ships no types). */
interface MetricFamily {
  name: string;
  help: string;
  type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED';
  metrics: Array<{
    value?: string;
    labels?: Record<string, string>;
    buckets?: Record<string, string>;
    count?: string;
    sum?: string;
  }>;
}
const parsePrometheus = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => MetricFamily[];

/** The value of `name` with exactly `labels` (undefined when there is no such sample). */
function sample(families: MetricFamily[], name: string, labels: Record<string, string> = {}): number | undefined {
  const family = families.find((f) => f.name === name);
  const found = family?.metrics.find((m) => JSON.stringify(sorted(m.labels ?? {})) === JSON.stringify(sorted(labels)));
  return found?.value === undefined ? undefined : Number(found.value);
}

function sorted(labels: Record<string, string>): Array<[string, string]> {
  return Object.entries(labels).sort(([a], [b]) => a.localeCompare(b));
}

/** An upstream as the values below expect it: the shared fixture's, with a gap sent and a failure behind it. */
function upstream(name: string, overrides: Partial<UpstreamStats> = {}): UpstreamStats {
  return fixtureUpstream(name, { gapsSent: 1, drainWaits: 4, sessions: 2, failures: 1, ...overrides });
}

/** The shared fixture, with the values the assertions below are written for. */
function gatewayStats(): GatewayStats {
  const s = fixtureStats();
  return {
    ...s,
    uptimeSeconds: 3600,
    journal: {
      ...s.journal,
      dropped: { ...s.journal.dropped, 'journal-full': 7 },
      pendingGaps: 1,
      lastCommitMs: 3,
      commitDurations: { boundsMs: [1, 10], counts: [850, 45, 5], sumMs: 1_234, count: 900 },
      misses: 2,
    },
    upstreams: [
      upstream('primary'),
      upstream('archive', {
        state: ConnectivityState.TRANSIENT_FAILURE,
        batchesInFlight: 0,
        pendingRows: 4321,
        pendingBytes: 1_250_000,
        oldestPendingAgeMs: 95_000,
        lastError: 'connect ECONNREFUSED 10.0.9.9:50051',
      }),
    ],
    dataAtRisk: {
      ...s.dataAtRisk,
      inBytesPerSecond: 20_000,
      outBytesPerSecond: 15_000,
      limitBytes: 100_000_000,
      secondsUntilFull: 19_750,
    },
    ingress: {
      ...s.ingress,
      devicesConnected: 9,
      messages: 4000,
      bytes: 400_000,
      qos0: 100,
      qos1: 3900,
      localMessages: 5,
      refusals: { ...s.ingress.refusals, 'token-expired': 2 },
      disconnects: { ...s.ingress.disconnects, 'token-expired': 1 },
      clientErrors: 3,
    },
    deviceLink: {
      ...s.deviceLink!,
      devicesConnected: 3,
      messages: 1000,
      bytes: 100_000,
      refusals: { ...s.deviceLink!.refusals, 'seq-not-increasing': 1 },
    },
    commands: { received: 10, delivered: 8, succeeded: 6, failed: 1, expired: 1, rejected: 0, unknownResults: 0, stored: 2 },
  };
}

describe('admin - data at risk', function () {
  this.timeout(5000);
  const limits = (maxBytes: number, policy: JournalLimits['policy'] = 'drop-oldest'): JournalLimits => ({
    maxBytes,
    maxAgeMs: 0,
    policy,
  });
  const at = (
    nowMs: number,
    appendedBytes: number,
    freedBytes: number,
    payloadBytes = appendedBytes - freedBytes,
  ): DataAtRiskSample => ({
    nowMs,
    rows: Math.ceil(payloadBytes / 100),
    payloadBytes,
    oldestTimeMs: payloadBytes > 0 ? 0 : null,
    appendedBytes,
    freedBytes,
  });

  it('data at risk - an empty journal without a limit: nothing at risk, never full', () => {
    const risk = new DataAtRiskTracker(limits(0)).observe(at(1000, 0, 0));
    assert.deepEqual(risk, {
      unackedBytes: 0,
      unackedRows: 0,
      oldestUnackedAgeMs: null,
      inBytesPerSecond: 0,
      outBytesPerSecond: 0,
      limitBytes: null,
      secondsUntilFull: null,
      whenFull: 'drop-oldest',
    });
  });

  it('data at risk - a growing journal: rates over the window and the time until the limit', () => {
    const tracker = new DataAtRiskTracker(limits(1_000_000, 'reject-new'));
    tracker.observe(at(0, 0, 0));
    const risk = tracker.observe({ ...at(10_000, 100_000, 20_000), oldestTimeMs: 4_000 });
    assert.equal(risk.inBytesPerSecond, 10_000);
    assert.equal(risk.outBytesPerSecond, 2_000);
    assert.equal(risk.unackedBytes, 80_000);
    assert.equal(risk.oldestUnackedAgeMs, 6_000);
    assert.equal(risk.limitBytes, 1_000_000);
    assert.equal(risk.whenFull, 'reject-new');
    // (1,000,000 - 80,000) bytes of room at 8,000 bytes/s net.
    assert.equal(risk.secondsUntilFull, 115);
  });

  it('data at risk - a draining or steady journal never fills: null; one at or over its limit: 0', () => {
    const draining = new DataAtRiskTracker(limits(1_000_000));
    draining.observe(at(0, 0, 0, 500_000));
    assert.equal(draining.observe(at(5_000, 10_000, 60_000, 450_000)).secondsUntilFull, null);
    const steady = new DataAtRiskTracker(limits(1_000_000));
    steady.observe(at(0, 0, 0, 500_000));
    assert.equal(steady.observe(at(5_000, 10_000, 10_000, 500_000)).secondsUntilFull, null);
    const full = new DataAtRiskTracker(limits(1_000_000));
    full.observe(at(0, 0, 0, 1_000_000));
    assert.equal(full.observe(at(5_000, 10_000, 10_000, 1_000_000)).secondsUntilFull, 0);
    assert.equal(new DataAtRiskTracker(limits(0)).observe(at(5_000, 10_000, 0, 10_000)).secondsUntilFull, null, 'no limit');
  });

  it('data at risk - what is older than the window no longer counts', () => {
    const tracker = new DataAtRiskTracker(limits(10_000_000));
    tracker.observe(at(0, 0, 0));
    tracker.observe(at(30_000, 600_000, 0)); // a burst in the first half minute
    assert.equal(tracker.observe(at(60_000, 600_000, 0)).inBytesPerSecond, 10_000);
    tracker.observe(at(90_000, 600_000, 0));
    const later = tracker.observe(at(120_000, 600_000, 0));
    assert.equal(later.inBytesPerSecond, 0, 'a minute after the burst');
    assert.equal(later.secondsUntilFull, null);
  });

  it('data at risk - asked many times a second, it keeps a bounded window and the same rates', () => {
    const tracker = new DataAtRiskTracker(limits(0));
    let risk = tracker.observe(at(0, 0, 0));
    // Ten minutes at 1,000 bytes/s, asked every 10 ms.
    for (let t = 10; t <= 600_000; t += 10) risk = tracker.observe(at(t, t, 0));
    assert.equal(risk.inBytesPerSecond, 1000);
    const kept = (tracker as unknown as { samples: unknown[] }).samples.length;
    assert.ok(kept <= 62, `${kept} samples kept`);
  });

  it('data at risk - counters that went back (another run) start the window over', () => {
    const tracker = new DataAtRiskTracker(limits(0));
    tracker.observe(at(0, 0, 0));
    tracker.observe(at(10_000, 1_000_000, 0));
    tracker.observe(at(20_000, 100, 0));
    assert.equal(tracker.observe(at(30_000, 10_100, 0)).inBytesPerSecond, 1000);
  });
});

describe('admin - /metrics', function () {
  this.timeout(10_000);
  let current: GatewayStats;
  let scrapes: number;
  let metrics: GatewayMetrics;
  const scrape = async () => parsePrometheus(await metrics.render());

  beforeEach(() => {
    current = gatewayStats();
    scrapes = 0;
    metrics = new GatewayMetrics({ stats: async () => (scrapes++, structuredClone(current)) }, { processMetrics: false });
  });

  it('metrics - names, types, labels and values from one stats snapshot per scrape', async () => {
    const families = await scrape();
    assert.equal(scrapes, 1);
    const byName = new Map(families.map((f) => [f.name, f]));
    for (const f of families) {
      assert.match(f.name, /^fleetgate_[a-z0-9_]+$/, f.name);
      assert.ok(f.help.length > 10, `${f.name} has a real HELP`);
      assert.equal(f.name.endsWith('_total'), f.type === 'COUNTER', `${f.name} is a ${f.type}`);
    }
    const types = (type: MetricFamily['type'], names: string[]) =>
      names.forEach((n) => assert.equal(byName.get(n)?.type, type, n));
    types('COUNTER', [
      'fleetgate_ingress_messages_total',
      'fleetgate_ingress_bytes_total',
      'fleetgate_ingress_refusals_total',
      'fleetgate_journal_commits_total',
      'fleetgate_journal_dropped_total',
      'fleetgate_upstream_acks_total',
      'fleetgate_upstream_records_sent_total',
      'fleetgate_upstream_records_resent_total',
      'fleetgate_upstream_gaps_sent_total',
      'fleetgate_commands_total',
      'fleetgate_journal_appended_bytes_total',
      'fleetgate_journal_freed_bytes_total',
    ]);
    types('GAUGE', [
      'fleetgate_journal_rows',
      'fleetgate_journal_payload_bytes',
      'fleetgate_journal_file_bytes',
      'fleetgate_journal_oldest_unacked_age_seconds',
      'fleetgate_journal_last_commit_seconds',
      'fleetgate_upstream_up',
      'fleetgate_upstream_state',
      'fleetgate_upstream_batches_in_flight',
      'fleetgate_upstream_pending_rows',
      'fleetgate_upstream_pending_bytes',
      'fleetgate_devices_online',
      'fleetgate_data_at_risk_bytes',
      'fleetgate_data_at_risk_oldest_age_seconds',
      'fleetgate_journal_seconds_until_full',
      'fleetgate_journal_limit_bytes',
    ]);

    // Commit durations: the journal thread's buckets, exported as a cumulative histogram in seconds.
    const commits = byName.get('fleetgate_journal_commit_seconds');
    assert.equal(commits?.type, 'HISTOGRAM');
    const histogram = commits.metrics[0] as unknown as { buckets: Record<string, string>; count: string; sum: string };
    assert.deepEqual(histogram.buckets, { '0.001': '850', '0.01': '895', '+Inf': '900' });
    assert.equal(Number(histogram.count), 900);
    assert.equal(Number(histogram.sum), 1.234);

    // The stage histograms: ingress -> durable, and per upstream written -> acked and arrival -> acked.
    const appends = byName.get('fleetgate_journal_append_seconds');
    assert.equal(appends?.type, 'HISTOGRAM');
    const append = appends.metrics[0] as unknown as { buckets: Record<string, string>; count: string; sum: string };
    assert.deepEqual(append.buckets, { '0.001': '4000', '0.01': '4990', '+Inf': '5000' });
    assert.equal(Number(append.sum), 9);
    const text = await metrics.render();
    const series = (name: string, labels: Record<string, string>) => textSample(text, name, labels);
    assert.equal(series('fleetgate_upstream_ack_seconds_count', { upstream: 'primary' }), 118);
    assert.equal(series('fleetgate_upstream_ack_seconds_count', { upstream: 'archive' }), 118, 'one series per upstream');
    assert.equal(series('fleetgate_upstream_ack_seconds_bucket', { upstream: 'primary', le: '0.001' }), 100);
    assert.equal(series('fleetgate_upstream_ack_seconds_bucket', { upstream: 'primary', le: '+Inf' }), 118);
    assert.equal(series('fleetgate_upstream_ack_seconds_sum', { upstream: 'primary' }), 0.15);
    assert.equal(series('fleetgate_upstream_delivery_seconds_count', { upstream: 'primary' }), 1010);
    assert.equal(series('fleetgate_upstream_delivery_seconds_bucket', { upstream: 'primary', le: '0.01' }), 1000);

    const v = (name: string, labels: Record<string, string> = {}) => sample(families, name, labels);
    assert.equal(v('fleetgate_build_info', { gateway_id: 'gw-berlin-7', version: '0.1.0' }), 1);
    assert.equal(v('fleetgate_ingress_messages_total', { protocol: 'mqtt' }), 4000);
    assert.equal(v('fleetgate_ingress_messages_total', { protocol: 'grpc' }), 1000);
    assert.equal(v('fleetgate_ingress_bytes_total', { protocol: 'grpc' }), 100_000);
    assert.equal(v('fleetgate_ingress_refusals_total', { protocol: 'mqtt', reason: 'token-expired' }), 2);
    assert.equal(v('fleetgate_ingress_refusals_total', { protocol: 'grpc', reason: 'seq-not-increasing' }), 1);
    assert.equal(
      byName.get('fleetgate_ingress_refusals_total')!.metrics.length,
      REFUSAL_REASONS.length + DEVICE_LINK_REFUSALS.length,
      'every reason, zeros included',
    );
    assert.equal(v('fleetgate_devices_online', { protocol: 'mqtt' }), 9);
    assert.equal(v('fleetgate_devices_online', { protocol: 'grpc' }), 3);
    assert.equal(v('fleetgate_journal_rows'), 4321);
    assert.equal(v('fleetgate_journal_payload_bytes'), 1_250_000);
    assert.equal(v('fleetgate_journal_file_bytes'), 4_096_000);
    assert.equal(v('fleetgate_journal_oldest_unacked_age_seconds'), 95);
    assert.equal(v('fleetgate_journal_commits_total'), 900);
    assert.equal(v('fleetgate_journal_last_commit_seconds'), 0.003);
    assert.equal(v('fleetgate_journal_dropped_total', { reason: 'journal-full' }), 7);
    assert.equal(v('fleetgate_journal_dropped_total', { reason: 'too-old' }), 0);
    assert.equal(v('fleetgate_journal_disk_full'), 0);
    assert.equal(v('fleetgate_upstream_up', { upstream: 'primary' }), 1);
    assert.equal(v('fleetgate_upstream_up', { upstream: 'archive' }), 0);
    assert.equal(v('fleetgate_upstream_state', { upstream: 'archive', state: 'transient_failure' }), 1);
    assert.equal(v('fleetgate_upstream_state', { upstream: 'archive', state: 'ready' }), 0);
    assert.equal(byName.get('fleetgate_upstream_state')!.metrics.length, 2 * Object.values(ConnectivityState).length);
    assert.equal(v('fleetgate_upstream_batches_in_flight', { upstream: 'primary' }), 2);
    assert.equal(v('fleetgate_upstream_acks_total', { upstream: 'primary' }), 118);
    assert.equal(v('fleetgate_upstream_records_resent_total', { upstream: 'primary' }), 3);
    assert.equal(v('fleetgate_upstream_pending_rows', { upstream: 'archive' }), 4321);
    assert.equal(v('fleetgate_upstream_oldest_pending_age_seconds', { upstream: 'archive' }), 95);
    assert.equal(v('fleetgate_commands_total', { outcome: 'succeeded' }), 6);
    assert.equal(v('fleetgate_commands_total', { outcome: 'expired' }), 1);
    assert.equal(v('fleetgate_commands_received_total'), 10);
    assert.equal(v('fleetgate_data_at_risk_bytes'), 1_250_000);
    assert.equal(v('fleetgate_data_at_risk_oldest_age_seconds'), 95);
    assert.equal(v('fleetgate_journal_seconds_until_full'), 19_750);
    assert.equal(v('fleetgate_journal_limit_bytes'), 100_000_000);
  });

  it('metrics - counters follow the totals in stats by their deltas; a total that went back restarts its series', async () => {
    await scrape();
    current.ingress.messages += 5;
    current.journal.commits += 2;
    current.upstreams[0]!.acks += 3;
    current.journal.dropped['too-old'] += 4;
    let families = await scrape();
    assert.equal(sample(families, 'fleetgate_ingress_messages_total', { protocol: 'mqtt' }), 4005);
    assert.equal(sample(families, 'fleetgate_journal_commits_total'), 902);
    assert.equal(sample(families, 'fleetgate_upstream_acks_total', { upstream: 'primary' }), 121);
    assert.equal(sample(families, 'fleetgate_journal_dropped_total', { reason: 'too-old' }), 4);
    assert.equal(sample(families, 'fleetgate_ingress_messages_total', { protocol: 'grpc' }), 1000, 'unchanged');
    families = await scrape();
    assert.equal(
      sample(families, 'fleetgate_ingress_messages_total', { protocol: 'mqtt' }),
      4005,
      'a scrape with no traffic adds nothing',
    );
    current.ingress.messages = 10;
    families = await scrape();
    assert.equal(sample(families, 'fleetgate_ingress_messages_total', { protocol: 'mqtt' }), 10);
    assert.equal(scrapes, 4);
  });

  it('metrics - what is unknown is absent, never 0 or NaN; an upstream no longer in stats leaves no series', async () => {
    current.journal.oldestUnackedAgeMs = null;
    current.dataAtRisk = { ...current.dataAtRisk, oldestUnackedAgeMs: null, limitBytes: null, secondsUntilFull: null };
    current.upstreams[1]!.oldestPendingAgeMs = null;
    current.deviceLink = null;
    const text = await metrics.render();
    assert.doesNotMatch(text, /NaN/);
    const families = parsePrometheus(text);
    const samples = (name: string) => families.find((f) => f.name === name)?.metrics ?? [];
    assert.deepEqual(samples('fleetgate_journal_oldest_unacked_age_seconds'), []);
    assert.deepEqual(samples('fleetgate_data_at_risk_oldest_age_seconds'), []);
    assert.deepEqual(samples('fleetgate_journal_seconds_until_full'), []);
    assert.deepEqual(samples('fleetgate_journal_limit_bytes'), []);
    assert.deepEqual(
      samples('fleetgate_upstream_oldest_pending_age_seconds').map((m) => m.labels),
      [{ upstream: 'primary' }],
    );
    assert.deepEqual(
      samples('fleetgate_devices_online').map((m) => m.labels),
      [{ protocol: 'mqtt' }],
    );

    current = gatewayStats();
    current.dataAtRisk.secondsUntilFull = 12;
    current.upstreams = [current.upstreams[0]!];
    const again = await scrape();
    assert.equal(sample(again, 'fleetgate_journal_seconds_until_full'), 12, 'set again once known');
    assert.equal(sample(again, 'fleetgate_upstream_up', { upstream: 'archive' }), undefined);
    assert.equal(sample(again, 'fleetgate_upstream_pending_rows', { upstream: 'archive' }), undefined);
  });

  it('metrics - process metrics (RSS, CPU, event loop lag) carry the prefix too', async () => {
    const withProcess = new GatewayMetrics({ stats: async () => gatewayStats() });
    const families = parsePrometheus(await withProcess.render());
    for (const name of [
      'fleetgate_process_resident_memory_bytes',
      'fleetgate_process_cpu_seconds_total',
      'fleetgate_nodejs_eventloop_lag_seconds',
    ]) {
      assert.ok(
        families.some((f) => f.name === name),
        name,
      );
    }
    assert.ok(families.every((f) => f.name.startsWith('fleetgate_')));
  });
});

describe('admin - routes', function () {
  this.timeout(10_000);
  let server: AdminHttpServer | undefined;
  let current: GatewayStats | Error;
  let condition: { failure?: string; closing: boolean };
  let base: string;

  beforeEach(async () => {
    current = gatewayStats();
    condition = { closing: false };
    server = new AdminHttpServer(
      gatewayAdminRoutes({
        stats: async () => {
          if (current instanceof Error) throw current;
          return structuredClone(current);
        },
        condition: () => condition,
      }),
      silentLogger,
    );
    const address: HostPort = await server.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${address.port}`;
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  const readyz = async () => {
    const res = await fetch(`${base}/readyz`);
    return { status: res.status, body: (await res.json()) as ReadinessReport };
  };
  const stats = () => current as GatewayStats;

  it('routes - /metrics answers the Prometheus text format', async () => {
    const res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    assert.equal(sample(parsePrometheus(await res.text()), 'fleetgate_journal_rows'), 4321);
  });

  it('readyz - ready with an upstream down: degraded, 200, and the body says which and why', async () => {
    const { status, body } = await readyz();
    assert.equal(status, 200);
    assert.equal(body.ready, true);
    assert.equal(body.status, 'degraded');
    assert.deepEqual(
      Object.values(body.checks).map((c) => c.ok),
      [true, true, true],
    );
    assert.equal(body.upstreams['primary']!.ok, true);
    assert.equal(body.upstreams['archive']!.ok, false);
    assert.equal(body.upstreams['archive']!.state, 'transient_failure');
    assert.match(body.upstreams['archive']!.reason, /ECONNREFUSED.*4321 rows/);
    stats().upstreams[1]!.state = ConnectivityState.READY;
    assert.equal((await readyz()).body.status, 'ready');
  });

  it('readyz - unready (503) while the disk refuses journal writes, ready again once it takes them', async () => {
    stats().journal.diskFull = true;
    const full = await readyz();
    assert.equal(full.status, 503);
    assert.equal(full.body.status, 'unready');
    assert.equal(full.body.checks.journal.ok, false);
    assert.match(full.body.checks.journal.reason, /refuses journal writes/);
    stats().journal.diskFull = false;
    assert.equal((await readyz()).status, 200);
  });

  it('readyz - unready while commits fail, until one succeeds', async () => {
    await readyz();
    stats().journal.failedCommits += 3;
    const failing = await readyz();
    assert.equal(failing.status, 503);
    assert.match(failing.body.checks.journal.reason, /commits are failing/);
    assert.equal((await readyz()).status, 503, 'no commit since: the verdict stands');
    stats().journal.commits += 1;
    assert.equal((await readyz()).status, 200);
  });

  it('readyz - unready at the journal limit with reject-new, not with drop-oldest', async () => {
    Object.assign(stats().dataAtRisk, { limitBytes: 1_000_000, unackedBytes: 1_000_000, secondsUntilFull: 0 });
    assert.equal((await readyz()).status, 200, 'drop-oldest keeps taking data');
    stats().dataAtRisk.whenFull = 'reject-new';
    const full = await readyz();
    assert.equal(full.status, 503);
    assert.match(full.body.checks.journal.reason, /reject-new/);
  });

  it('readyz - unready when shutting down, when the journal thread failed, when stats fail', async () => {
    condition = { closing: true };
    let r = await readyz();
    assert.equal(r.status, 503);
    assert.equal(r.body.checks.process.reason, 'shutting down');
    condition = { closing: false, failure: 'SQLITE_IOERR' };
    r = await readyz();
    assert.equal(r.status, 503);
    assert.match(r.body.checks.process.reason, /SQLITE_IOERR/);
    condition = { closing: false };
    current = new Error('the journal thread is gone');
    r = await readyz();
    assert.equal(r.status, 503);
    assert.match(r.body.checks.journal.reason, /the journal thread is gone/);
    const health = await fetch(`${base}/healthz`);
    assert.equal(health.status, 200, '/healthz is about the process only');
  });
});
