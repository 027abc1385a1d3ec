/**
 * `npm run bench -- replay`: how fast a backlog drains after an outage, and what it does to live traffic.
 *
 * A journal holding `--backlog` records (3M by default, 100-byte payloads: what a gateway piles up during a
 * long outage) is written into the gateway's data folder, then a cloud-stub and the gateway start on it, while
 * `--live-devices` MQTT devices publish QoS 1 at `--live-rate` messages per second each (50 x 100: 5,000 msg/s). Figures: the time
 * until the whole backlog is acknowledged by the cloud (goal < 60 s), and the latency of live messages from
 * publish to commit at the cloud during that drain (goal p99 < 100 ms), in an HDR histogram.
 * Baseline, same run: the same live traffic through a fresh gateway with no backlog. Anchor: NanoMQ users
 * report 12 hours to resend 150 MB (nanomq#1980).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import mqtt, { type MqttClient } from 'mqtt';
import { SINK_FILE } from '@fleetgate/cloud-stub';
import type { GatewayStats } from '@fleetgate/gateway';
import { SqliteJournal } from '../gateway/src/journal/sqlite/journal-sqlite.ts';
import type { NewRecord } from '../gateway/src/journal/journal.ts';
import { killAll, portOf, startFleetgate } from '../test/support/fleetgate-process.ts';
import { latencyHistogram, percentilesMs, recordMs, type Percentiles } from './lib/latency.ts';
import { benchGatewayArgs } from './lib/fleetgate-stack.ts';
import { printReport, type BenchReport } from './lib/report.ts';

interface LiveRun {
  /** Messages each device published and got a PUBACK for. */
  acked: number;
  sent: number;
}

interface Latency extends Percentiles {
  /** p99 and max of the messages sent in each 5 s, from the first one on: where in the run the tail comes from. */
  over5s?: Array<{ from: number; p99: number; max: number }>;
  count: number;
}

export async function replay(argv: string[]): Promise<BenchReport> {
  const { values } = parseArgs({
    args: argv,
    options: {
      backlog: { type: 'string', default: '3000000' },
      payload: { type: 'string', default: '100' },
      'live-devices': { type: 'string', default: '50' },
      'live-rate': { type: 'string', default: '100' },
      'baseline-seconds': { type: 'string', default: '10' },
      durability: { type: 'string', default: 'power' },
      json: { type: 'boolean', default: false },
      'gateway-arg': { type: 'string', multiple: true, default: [] },
    },
  });
  const backlog = Number(values.backlog);
  const payloadBytes = Number(values.payload);
  const liveDevices = Number(values['live-devices']);
  const liveRate = Number(values['live-rate']);
  const durability = values.durability!;

  const dir = mkdtempSync(join(tmpdir(), 'fleetgate-bench-replay-'));
  try {
    // Baseline: live traffic alone through a fresh gateway.
    const baseline = await withStack(join(dir, 'baseline'), durability, values['gateway-arg']!, async (stack) => {
      const live = startLive(stack.mqttPort, liveDevices, liveRate, payloadBytes);
      await delay(Number(values['baseline-seconds']) * 1000);
      const run = await live.stop();
      await stack.waitFor((gw) => gw.journal.rows === 0 && gw.upstreams[0]!.ackedThrough >= run.acked, 60_000);
      return { run, latency: liveLatency(stack.cloudData) };
    });

    // The backlog, written straight into the gateway's journal, as an outage would have left it.
    const replayDir = join(dir, 'replay');
    const fillStarted = performance.now();
    const journalBytes = fillJournal(join(replayDir, 'gateway'), backlog, payloadBytes);
    const fillSeconds = (performance.now() - fillStarted) / 1000;
    process.stderr.write(`backlog of ${backlog} records written in ${fillSeconds.toFixed(1)} s; draining...\n`);

    const drain = await withStack(replayDir, durability, values['gateway-arg']!, async (stack) => {
      const started = performance.now();
      const live = startLive(stack.mqttPort, liveDevices, liveRate, payloadBytes);
      const progress: Array<{ s: number; ackedThrough: number }> = [];
      await stack.waitFor((gw) => {
        progress.push({ s: +((performance.now() - started) / 1000).toFixed(1), ackedThrough: gw.upstreams[0]!.ackedThrough });
        return gw.upstreams[0]!.ackedThrough >= backlog;
      }, 600_000);
      const drainSeconds = (performance.now() - started) / 1000;
      const run = await live.stop();
      await stack.waitFor((gw) => gw.journal.rows === 0 && gw.upstreams[0]!.ackedThrough >= backlog + run.acked, 60_000);
      const cloud = (await (await fetch(`${stack.cloudAdmin}/v1/stats`)).json()) as { records: number; duplicates: number };
      return { drainSeconds, run, latency: liveLatency(stack.cloudData), cloud, progress };
    });

    const backlogMB = (backlog * payloadBytes) / 1e6;
    const rate = Math.round(backlog / drain.drainSeconds);
    const nanoMqBytesPerSecond = 150e6 / (12 * 3600);
    const report: BenchReport = {
      name: 'replay',
      settings: { ...values },
      figures: {
        backlogRecords: backlog,
        backlogPayloadMB: +backlogMB.toFixed(1),
        journalFileMB: +(journalBytes / 1e6).toFixed(1),
        fillSeconds: +fillSeconds.toFixed(1),
        drainSeconds: +drain.drainSeconds.toFixed(1),
        drainRecordsPerSecond: rate,
        drainPayloadMBPerSecond: +(backlogMB / drain.drainSeconds).toFixed(2),
        liveDuringDrain: { ...drain.run, latencyMs: drain.latency },
        liveBaseline: { ...baseline.run, latencyMs: baseline.latency },
        liveP99Ratio: +(drain.latency.p99 / baseline.latency.p99).toFixed(2),
        cloudRecords: drain.cloud.records,
        everythingArrived: drain.cloud.records >= backlog + drain.run.acked,
        speedupOverNanoMqAnchor: Math.round((backlogMB * 1e6) / drain.drainSeconds / nanoMqBytesPerSecond),
        progress: drain.progress.filter((_, i) => i % 20 === 0),
      },
      summary:
        `${backlog} records (${backlogMB.toFixed(0)} MB) drained in ${drain.drainSeconds.toFixed(1)} s (${rate} rec/s; goal < 60 s); ` +
        `live ${liveDevices}x${liveRate} msg/s publish->cloud commit p50/p99 ${drain.latency.p50}/${drain.latency.p99} ms during the drain ` +
        `(goal p99 < 100 ms) vs ${baseline.latency.p50}/${baseline.latency.p99} ms with no backlog; ` +
        `NanoMQ anchor (150 MB in 12 h) x${Math.round((backlogMB * 1e6) / drain.drainSeconds / nanoMqBytesPerSecond)}; durability=${durability}`,
    };
    printReport(report, values.json!);
    return report;
  } finally {
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

interface BenchStack {
  mqttPort: number;
  cloudAdmin: string;
  cloudData: string;
  waitFor(done: (gw: GatewayStats) => boolean, timeoutMs: number): Promise<void>;
}

async function withStack<T>(
  dir: string,
  durability: string,
  gatewayArgs: string[],
  use: (stack: BenchStack) => Promise<T>,
): Promise<T> {
  const cloudData = join(dir, 'cloud');
  const cloud = await startFleetgate(
    'cloud',
    [
      'cloud',
      '--allow-anonymous',
      '--listen',
      '127.0.0.1:0',
      '--admin',
      '127.0.0.1:0',
      '--data',
      cloudData,
      '--durability',
      durability,
    ],
    'cloud-stub ready',
  );
  const gateway = await startFleetgate(
    'gateway',
    benchGatewayArgs(portOf(cloud.ready.listen), join(dir, 'gateway'), durability, gatewayArgs),
    'gateway ready',
  );
  const gatewayAdmin = `http://127.0.0.1:${portOf(gateway.ready.admin)}`;
  try {
    return await use({
      mqttPort: portOf(gateway.ready.mqtt),
      cloudAdmin: `http://127.0.0.1:${portOf(cloud.ready.admin)}`,
      cloudData,
      async waitFor(done, timeoutMs) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const gw = (await (await fetch(`${gatewayAdmin}/v1/stats`)).json()) as GatewayStats;
          if (done(gw)) return;
          if (Date.now() > deadline) throw new Error(`not done within ${timeoutMs} ms: ${JSON.stringify(gw.upstreams[0]!)}`);
          await delay(250);
        }
      },
    });
  } finally {
    await gateway.process.stop();
    await cloud.process.stop();
  }
}

/** Writes `count` records into a fresh journal in `dir`; returns the journal file's size. */
/** Writes `count` records straight into a gateway journal in `dir`, as an outage would have left them; returns its file size. */
export function fillJournal(dir: string, count: number, payloadBytes: number): number {
  const journal = new SqliteJournal({ dir, durability: 'process' });
  const now = Date.now() - 3_600_000;
  const chunk = 20_000;
  for (let from = 0; from < count; from += chunk) {
    const records: NewRecord[] = [];
    for (let i = from; i < Math.min(count, from + chunk); i++) {
      records.push({
        deviceId: `backlog-${i % 100}`,
        stream: '',
        contentType: '',
        deviceSeq: 0,
        deviceEpoch: '',
        payload: Buffer.from(`backlog ${i} `.padEnd(payloadBytes, '.')),
        deviceTimeMs: now,
        gatewayTimeMs: now,
      });
    }
    journal.commit(records);
  }
  journal.checkpoint();
  const bytes = journal.stats().fileBytes;
  journal.close();
  return bytes;
}

/** `devices` mqtt.js clients, each publishing QoS 1 `rate` times a second; payloads start with the send time. */
function startLive(port: number, devices: number, rate: number, payloadBytes: number): { stop(): Promise<LiveRun> } {
  const run: LiveRun = { acked: 0, sent: 0 };
  const clients: MqttClient[] = [];
  const timers: NodeJS.Timeout[] = [];
  for (let d = 0; d < devices; d++) {
    const id = `live-${d}`;
    const client = mqtt.connect({ host: '127.0.0.1', port, clientId: id, protocolVersion: 4, reconnectPeriod: 200 });
    clients.push(client);
    timers.push(
      setInterval(() => {
        if (!client.connected) return;
        run.sent++;
        const payload = `${Date.now()} `.padEnd(payloadBytes, '.');
        client.publish(`devices/${id}/telemetry`, payload, { qos: 1 }, (err) => {
          if (!err) run.acked++;
        });
      }, 1000 / rate),
    );
  }
  return {
    async stop() {
      for (const t of timers) clearInterval(t);
      const deadline = Date.now() + 30_000;
      while (run.acked < run.sent && Date.now() < deadline) await delay(50);
      await Promise.all(clients.map((c) => c.endAsync()));
      return run;
    },
  };
}

/** Publish -> cloud commit latency of the live devices' records, from the cloud-stub's sink. */
function liveLatency(cloudData: string): Latency {
  const histogram = latencyHistogram();
  const db = new Database(join(cloudData, SINK_FILE), { readonly: true });
  try {
    let count = 0;
    const rows = db
      .prepare<[], { payload: Buffer; received: number }>(
        "SELECT payload, received_time AS received FROM records WHERE device_id LIKE 'live-%'",
      )
      .all();
    const samples = rows.map((row) => ({ sent: Number(row.payload.toString('latin1', 0, 13)), received: row.received }));
    // A loop, not Math.min(...): at 5,000 msg/s the samples outnumber what a call may spread.
    const first = samples.reduce((min, x) => Math.min(min, x.sent), Infinity);
    const windows = new Map<number, number[]>();
    for (const { sent, received } of samples) {
      recordMs(histogram, received - sent);
      count++;
      const w = Math.floor((sent - first) / 5000);
      let list = windows.get(w);
      if (!list) windows.set(w, (list = []));
      list.push(received - sent);
    }
    const over5s = [...windows.entries()]
      .sort(([a], [b]) => a - b)
      .map(([w, list]) => {
        list.sort((a, b) => a - b);
        return { from: w * 5, p99: list[Math.floor(list.length * 0.99)]!, max: list.at(-1)! };
      });
    return { ...percentilesMs(histogram), over5s, count };
  } finally {
    db.close();
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
