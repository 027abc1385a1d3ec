/**
 * The operator's view of a running gateway, end to end in one process: /metrics (parsed as Prometheus text)
 * moving as devices publish and the cloud acknowledges, data at risk growing while the cloud is away, and
 * /readyz staying ready with the upstream down but turning unready (503) when the journal cannot be written
 * (its file capped, as a full disk), then ready again once the cloud's acks free space.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { CloudStub } from '@fleetgate/cloud-stub';
import { GATEWAY_DEFAULTS } from '@fleetgate/gateway';
import type { ReadinessReport } from '../../gateway/src/admin/readiness.ts';
import { startInProcess, type InProcessStack } from '../support/in-process.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { TestDevice, waitUntil } from '../support/test-device.ts';
import { textSample } from '../support/prometheus-text.ts';

/** parse-prometheus-text-format, which ships no types: the parts read here. */
interface MetricFamily {
  name: string;
  type: string;
  metrics: Array<{ value?: string; labels?: Record<string, string> }>;
}
const parsePrometheus = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => MetricFamily[];

/** One scrape: metric name + labels -> value. */
class Scrape {
  constructor(
    private readonly families: MetricFamily[],
    private readonly text: string,
  ) {}
  get(name: string, labels: Record<string, string> = {}): number {
    const wanted = JSON.stringify(Object.entries(labels).sort());
    const found = this.families
      .find((f) => f.name === name)
      ?.metrics.find((m) => JSON.stringify(Object.entries(m.labels ?? {}).sort()) === wanted);
    if (found?.value === undefined) throw new Error(`no sample ${name}${JSON.stringify(labels)}`);
    return Number(found.value);
  }
  /** A histogram's observation count (the series with these labels). */
  count(name: string, labels: Record<string, string> = {}): number {
    const found = textSample(this.text, `${name}_count`, labels);
    if (found === undefined) throw new Error(`no histogram ${name}${JSON.stringify(labels)}`);
    return found;
  }
  has(name: string): boolean {
    return (this.families.find((f) => f.name === name)?.metrics.length ?? 0) > 0;
  }
}

describe('metrics and readiness (end to end)', function () {
  this.timeout(20_000);
  const dir = useTempDir();
  let stack: InProcessStack | undefined;
  let cloud: CloudStub | undefined;
  let devices: TestDevice[] = [];

  afterEach(async () => {
    await Promise.all(devices.map((d) => d.close()));
    devices = [];
    await stack?.gateway.close();
    await stack?.cloud.close();
    await cloud?.close();
    stack = undefined;
    cloud = undefined;
  });

  const admin = () => `http://127.0.0.1:${stack!.gateway.adminAddress!.port}`;
  const scrape = async () => {
    const res = await fetch(`${admin()}/metrics`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    const text = await res.text();
    return new Scrape(parsePrometheus(text), text);
  };
  const readyz = async () => {
    const res = await fetch(`${admin()}/readyz`);
    return { status: res.status, body: (await res.json()) as ReadinessReport };
  };
  const connect = async (count: number, window = 20) => {
    const fresh = Array.from(
      { length: count },
      (_, i) => new TestDevice(`metrics-${i}`, stack!.gateway.mqttAddress.port, window),
    );
    devices.push(...fresh);
    await Promise.all(fresh.map((d) => d.connected()));
    return fresh;
  };
  const fast = { drainGraceMs: 500, uplink: { ...GATEWAY_DEFAULTS.uplink, reconnectMaxMs: 200 } };

  it('metrics e2e - counters rise as devices publish and the cloud acknowledges; ready with the upstream up', async () => {
    stack = await startInProcess(dir.path, fast);
    await waitUntil(
      'the upstream to be up',
      async () => (await scrape()).get('fleetgate_upstream_up', { upstream: 'default' }) === 1,
    );
    const before = await scrape();
    const ready = await readyz();
    assert.equal(ready.status, 200);
    assert.equal(ready.body.status, 'ready');
    assert.equal(ready.body.upstreams['default']?.state, 'ready');

    const published = await connect(2);
    assert.equal((await scrape()).get('fleetgate_devices_online', { protocol: 'mqtt' }), 2);
    await Promise.all(published.map((d) => d.publishUpTo(300)));
    const after = await waitUntil('the cloud to acknowledge everything', async () => {
      const s = await scrape();
      return (
        s.get('fleetgate_journal_rows') === 0 && s.get('fleetgate_upstream_pending_rows', { upstream: 'default' }) === 0 && s
      );
    });

    const rise = (name: string, labels: Record<string, string> = {}) => after.get(name, labels) - before.get(name, labels);
    assert.equal(rise('fleetgate_ingress_messages_total', { protocol: 'mqtt' }), 600);
    assert.ok(rise('fleetgate_ingress_bytes_total', { protocol: 'mqtt' }) > 600 * 8);
    assert.equal(rise('fleetgate_journal_appended_bytes_total'), rise('fleetgate_ingress_bytes_total', { protocol: 'mqtt' }));
    assert.equal(
      rise('fleetgate_journal_freed_bytes_total'),
      rise('fleetgate_journal_appended_bytes_total'),
      'all of it acked and freed',
    );
    assert.ok(rise('fleetgate_journal_commits_total') > 0);
    assert.equal(
      after.count('fleetgate_journal_commit_seconds') - before.count('fleetgate_journal_commit_seconds'),
      rise('fleetgate_journal_commits_total'),
      'every commit timed',
    );
    assert.equal(rise('fleetgate_journal_committed_rows_total'), 600);
    // The stages of a message's path, each message counted once in each (nothing was resent on this stream).
    const counted = (name: string, labels: Record<string, string> = {}) => after.count(name, labels) - before.count(name, labels);
    assert.equal(counted('fleetgate_journal_append_seconds'), 600, 'every message timed ingress -> durable');
    assert.equal(counted('fleetgate_upstream_delivery_seconds', { upstream: 'default' }), 600, 'and arrival -> acked');
    assert.equal(
      counted('fleetgate_upstream_ack_seconds', { upstream: 'default' }),
      rise('fleetgate_upstream_batches_sent_total', { upstream: 'default' }),
      'every batch timed written -> acked',
    );
    assert.ok(rise('fleetgate_upstream_records_sent_total', { upstream: 'default' }) >= 600);
    assert.ok(rise('fleetgate_upstream_acks_total', { upstream: 'default' }) > 0);
    assert.equal(after.get('fleetgate_upstream_batches_in_flight', { upstream: 'default' }), 0);
    assert.equal(after.get('fleetgate_data_at_risk_bytes'), 0);
    assert.equal(after.has('fleetgate_data_at_risk_oldest_age_seconds'), false, 'nothing at risk: no age');
    assert.equal(after.get('fleetgate_journal_limit_bytes'), GATEWAY_DEFAULTS.journalLimits.maxBytes);
    assert.ok(after.get('fleetgate_process_resident_memory_bytes') > 0);
  });

  it('metrics e2e - cloud away: data at risk grows, the gateway is degraded but ready; a journal that cannot be written makes it unready until acks free space', async () => {
    stack = await startInProcess(dir.path, { ...fast, maxJournalFileBytes: 256 * 1024 });
    const cloudPort = stack.cloud.address.port;
    await stack.cloud.close();
    await waitUntil(
      'the upstream to be down',
      async () => (await scrape()).get('fleetgate_upstream_up', { upstream: 'default' }) === 0,
    );

    const [first] = await connect(1);
    await first!.publishUpTo(100);
    const degraded = await readyz();
    assert.equal(degraded.status, 200, 'an upstream down does not make the gateway unready');
    assert.equal(degraded.body.status, 'degraded');
    assert.equal(degraded.body.upstreams['default']?.ok, false);
    const atRisk = await scrape();
    assert.ok(atRisk.get('fleetgate_data_at_risk_bytes') > 0);
    assert.equal(atRisk.get('fleetgate_data_at_risk_rows'), 100);
    assert.ok(atRisk.get('fleetgate_data_at_risk_oldest_age_seconds') >= 0);
    assert.equal(atRisk.get('fleetgate_upstream_pending_rows', { upstream: 'default' }), 100);
    assert.ok(atRisk.get('fleetgate_journal_seconds_until_full') > 0, 'growing toward the 1 GiB limit');

    // Fill the capped journal file: SQLite answers SQLITE_FULL, the journal refuses appends.
    // ~5,000 rows fill 256 KiB; these devices are not awaited (some of their messages wait for the space).
    const fillers = await connect(8, 50);
    for (const d of fillers) void d.publishUpTo(1500);
    const unready = await waitUntil('/readyz to turn unready', async () => {
      const r = await readyz();
      return r.status === 503 && r;
    });
    assert.equal(unready.body.status, 'unready');
    assert.equal(unready.body.checks.journal.ok, false);
    assert.match(unready.body.checks.journal.reason, /refuses journal writes/);
    assert.equal(unready.body.checks.listeners.ok, true);
    const full = await scrape();
    assert.equal(full.get('fleetgate_journal_disk_full'), 1);
    assert.ok(full.get('fleetgate_ingress_refusals_total', { protocol: 'mqtt', reason: 'journal-full' }) > 0);
    assert.ok(full.get('fleetgate_journal_commit_failures_total') > 0, 'the commit that met SQLITE_FULL');

    // The cloud comes back on the same port: acks free rows, the journal takes writes again.
    cloud = await CloudStub.start({
      listen: { host: '127.0.0.1', port: cloudPort },
      dataDir: join(dir.path, 'cloud'),
      durability: 'process',
    });
    await waitUntil('/readyz to be ready again', async () => (await readyz()).body.status === 'ready', 15_000);
    await first!.publishUpTo(150);
    const recovered = await scrape();
    assert.equal(recovered.get('fleetgate_journal_disk_full'), 0);
    assert.equal(recovered.get('fleetgate_upstream_up', { upstream: 'default' }), 1);
    assert.ok(recovered.get('fleetgate_upstream_acks_total', { upstream: 'default' }) > 0);
  });
});
