/**
 * `npm run bench -- latency`: device -> cloud commit latency at a fixed rate: 20,000 msgs/s over 100 MQTT
 * connections (200 msgs/s each, paced every 5 ms, QoS 1, at most 20 in flight per connection), 100-byte
 * payloads whose first 8 bytes are the send time. The figure is, for every message sent in the measured
 * window, the cloud-stub's commit time of its record (`receivedTime`, set when the sink's commit transaction
 * starts; whole ms) minus its send time, in an HDR histogram. Goal: p99 < 25 ms. Beside it, the same counted
 * from each message's scheduled time: when PUBACKs are slow a device's 20 in-flight slots fill and messages
 * leave late; that wait is not in the first figure (coordinated omission) and is in the second.
 * Baseline, same run: the same paced load through a bare aedes broker, to a QoS 1 subscriber on this machine:
 * publish -> delivery, what a bare broker costs for the same hop; the ratio is over its p99
 * (--subscriber-qos 0 for a QoS 0 subscription). aedes delivers everything to one subscriber on one thread, and
 * on 2 shared cores it may not carry 20,000 msgs/s that way (then its latency is queueing, and the ratio says
 * little): the same hop through Debian's mosquitto, when installed, is a second reference. The achieved rates are reported beside the latencies (sent,
 * PUBACKed, committed at the cloud, delivered), how late the loader had to send because PUBACKs were slow,
 * and the CPU of each process in the measured window (2 cores here, shared).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { exportSqliteSink } from '@fleetgate/cloud-stub';
import { quantileMs, type HistogramSnapshot } from '@fleetgate/core';
import type { GatewayStats } from '@fleetgate/gateway';
import { killAll } from '../test/support/fleetgate-process.ts';
import { cpuSeconds, runLoader, startServer, startSubscriber, stopChildren } from './lib/children.ts';
import { startStack } from './lib/fleetgate-stack.ts';
import { findMosquitto, startMosquitto } from './lib/mosquitto.ts';
import { latencyHistogram, percentilesMs, recordMs, type Percentiles } from './lib/latency.ts';
import type { LoadResult, LoadSettings } from './lib/mqtt-load.ts';
import { printReport, type BenchReport } from './lib/report.ts';

const GOAL_P99_MS = 25;

interface StageQuantiles {
  p50: number | null;
  p99: number | null;
  p999: number | null;
  count: number;
}

/**
 * Where the time goes, from the gateway's own stage histograms (GET /v1/stats; the same as /metrics): ingress ->
 * durable (per message), each journal commit, batch written -> acked and arrival -> acked (per upstream). Their
 * buckets are coarse (0.5, 1, 2, 5, 10, 25, 50 ms ...): the quantiles are interpolated inside a bucket. `from` and
 * `to` are read when the measured window opens and closes.
 */
function stageQuantiles(from: GatewayStats, to: GatewayStats): Record<string, StageQuantiles> {
  const of = (pick: (stats: GatewayStats) => HistogramSnapshot): StageQuantiles => {
    const [a, b] = [pick(from), pick(to)];
    const h = { ...b, counts: b.counts.map((n, i) => n - a.counts[i]!), sumMs: b.sumMs - a.sumMs, count: b.count - a.count };
    const q = (p: number) => {
      const ms = quantileMs(h, p);
      return ms === null ? null : +ms.toFixed(2);
    };
    return { p50: q(0.5), p99: q(0.99), p999: q(0.999), count: h.count };
  };
  return {
    append: of((s) => s.journal.appendDurations),
    commit: of((s) => s.journal.commitDurations),
    batchAck: of((s) => s.upstreams[0]!.ackDurations),
    delivery: of((s) => s.upstreams[0]!.deliveryDurations),
  };
}

export async function latency(argv: string[]): Promise<BenchReport> {
  const { values } = parseArgs({
    args: argv,
    options: {
      rate: { type: 'string', default: '20000' },
      connections: { type: 'string', default: '100' },
      inflight: { type: 'string', default: '20' },
      payload: { type: 'string', default: '100' },
      seconds: { type: 'string', default: '15' },
      warmup: { type: 'string', default: '3' },
      'tick-ms': { type: 'string', default: '5' },
      'subscriber-qos': { type: 'string', default: '1' },
      durability: { type: 'string', default: 'power' },
      json: { type: 'boolean', default: false },
      /** Extra flags for `fleetgate gateway`, e.g. --gateway-arg=--commit-interval-ms --gateway-arg=2 */
      'gateway-arg': { type: 'string', multiple: true, default: [] },
    },
  });
  const rate = Number(values.rate);
  const load = (port: number, clientPrefix: string): LoadSettings => ({
    host: '127.0.0.1',
    port,
    clientPrefix,
    connections: Number(values.connections),
    inflight: Number(values.inflight),
    payloadBytes: Number(values.payload),
    warmupSeconds: Number(values.warmup),
    seconds: Number(values.seconds),
    rate,
    tickMs: Number(values['tick-ms']),
    stampPayload: true,
  });

  const dir = mkdtempSync(join(tmpdir(), 'fleetgate-bench-latency-'));
  try {
    // Baselines: publisher -> bare broker -> subscriber; aedes, then mosquitto when installed.
    const baseline = async (kind: 'aedes' | 'mosquitto', qos: 0 | 1) => {
      const broker =
        kind === 'aedes'
          ? await startServer(new URL('./servers/bare-aedes.js', import.meta.url))
          : await startMosquitto(mosquittoBin.bin!, dir);
      const subscriber = await startSubscriber({ host: '127.0.0.1', port: broker.port, topic: 'devices/+/telemetry', qos });
      const cores = coresInWindow({ [kind]: broker.pid, subscriber: subscriber.pid });
      const result = await runLoader(load(broker.port, 'bare-'), cores.onEvent);
      const delivery = await subscriber.result(result.window!);
      await subscriber.stop();
      await broker.stop();
      return {
        keptUpWithRate: result.sentRate! >= 0.98 * rate && delivery.inWindow === result.sent && lateShare(result) < 0.01,
        lateShare: +lateShare(result).toFixed(3),
        subscriptionQos: qos,
        deliveryLatencyMs: delivery.latencyMs,
        deliveryFromScheduleMs: delivery.fromScheduleMs,
        sentInWindow: result.sent,
        deliveredOfThose: delivery.inWindow,
        sentRate: result.sentRate,
        pubackRate: result.rate,
        pubackLatencyMs: result.latencyMs,
        scheduleLagMs: result.scheduleLagMs,
        coresInWindow: { ...cores.cores(), loader: +(result.cpuSeconds / Number(values.seconds)).toFixed(2) } as Record<
          string,
          number
        >,
      };
    };
    const subscriptionQos = values['subscriber-qos'] === '0' ? 0 : 1;
    const mosquittoBin = findMosquitto();
    const bare = await baseline('aedes', subscriptionQos);
    const mosquitto = mosquittoBin.bin ? await baseline('mosquitto', subscriptionQos) : undefined;

    // fleetgate: publisher -> gateway (journal) -> cloud-stub (sink commit).
    const stack = await startStack(join(dir, 'stack'), { durability: values.durability!, gatewayArgs: values['gateway-arg']! });
    let gatewayLoad: LoadResult;
    let committed: number;
    let stages: Record<string, StageQuantiles>;
    const cores = coresInWindow({ gateway: stack.gateway.process.pid, cloud: stack.cloud.process.pid });
    try {
      // The stage histograms are read when the measured window opens and closes: their difference is the window.
      const marks: Partial<Record<'measuring' | 'measured', Promise<GatewayStats>>> = {};
      gatewayLoad = await runLoader(load(stack.mqttPort, 'lat-'), (event) => {
        cores.onEvent(event);
        if (event === 'measuring' || event === 'measured') marks[event] = stack.gatewayStats();
      });
      // Every PUBACKed message must reach the cloud; the tail of the window may still be on its way.
      committed = await stack.waitForCloud(gatewayLoad.totalAcked, 60_000);
      stages = stageQuantiles(await marks.measuring!, await marks.measured!);
    } finally {
      await stack.stop();
    }
    const cloud = commitLatency(stack.cloudData, gatewayLoad.window!);

    const seconds = Number(values.seconds);
    const p99 = cloud.latencyMs.p99;
    // Kept up: the rate held over the window, and (almost) no message had to wait for an in-flight slot: a
    // loader that is behind catches up later, which can hold the average while the schedule slips.
    const keptUp = gatewayLoad.sentRate! >= 0.98 * rate && cloud.committedRate >= 0.98 * rate && lateShare(gatewayLoad) < 0.01;
    const report: BenchReport = {
      name: 'latency',
      settings: { ...values },
      figures: {
        targetRate: rate,
        gateway: {
          commitLatencyMs: cloud.latencyMs,
          commitFromScheduleMs: cloud.fromScheduleMs,
          commitLatencyOver2s: cloud.over2s,
          sentInWindow: gatewayLoad.sent,
          committedOfThose: cloud.inWindow,
          sentRate: gatewayLoad.sentRate,
          pubackRate: gatewayLoad.rate,
          committedRate: cloud.committedRate,
          pubackLatencyMs: gatewayLoad.latencyMs,
          scheduleLagMs: gatewayLoad.scheduleLagMs,
          lateShare: +lateShare(gatewayLoad).toFixed(3),
          pubackedTotal: gatewayLoad.totalAcked,
          committedAtCloud: committed,
          everyPubackedMessageArrived: committed >= gatewayLoad.totalAcked,
          unanswered: gatewayLoad.unanswered,
          coresInWindow: { ...cores.cores(), loader: +(gatewayLoad.cpuSeconds / seconds).toFixed(2) },
          stagesMs: stages,
        },
        bareAedes: bare,
        mosquitto: mosquitto ?? `skipped: ${mosquittoBin.why}`,
        p99Ratio: +(p99 / bare.deliveryLatencyMs.p99).toFixed(2),
        p99RatioToMosquitto: mosquitto ? +(p99 / mosquitto.deliveryLatencyMs.p99).toFixed(2) : null,
        keptUpWithRate: keptUp,
        goalMet: p99 < GOAL_P99_MS && keptUp,
      },
      summary:
        `${rate} msgs/s over ${values.connections} connections: gateway publish -> cloud commit p50/p99/max ` +
        `${cloud.latencyMs.p50}/${p99}/${cloud.latencyMs.max} ms (goal p99 < ${GOAL_P99_MS} ms: ${p99 < GOAL_P99_MS ? 'met' : 'NOT met'}); ` +
        `from schedule p99 ${cloud.fromScheduleMs.p99} ms; ` +
        `bare aedes publish -> QoS ${bare.subscriptionQos} subscriber p50/p99 ${bare.deliveryLatencyMs.p50}/${bare.deliveryLatencyMs.p99} ms ` +
        `(aedes ${bare.coresInWindow.aedes ?? '?'} cores); p99 ratio ${(p99 / bare.deliveryLatencyMs.p99).toFixed(2)}x` +
        (bare.keptUpWithRate ? '; ' : ' (bare aedes did not keep up with the rate: the ratio says little); ') +
        (mosquitto
          ? `mosquitto publish -> subscriber p50/p99 ${mosquitto.deliveryLatencyMs.p50}/${mosquitto.deliveryLatencyMs.p99} ms, ` +
            `ratio ${(p99 / mosquitto.deliveryLatencyMs.p99).toFixed(1)}x${mosquitto.keptUpWithRate ? '' : ' (mosquitto did not keep up)'}; `
          : `mosquitto skipped (${mosquittoBin.why}); `) +
        `achieved: sent ${gatewayLoad.sentRate}/s, ` +
        `PUBACKed ${gatewayLoad.rate}/s, committed ${cloud.committedRate}/s` +
        `, ${(lateShare(gatewayLoad) * 100).toFixed(1)}% of messages left > ${2 * Number(values['tick-ms'])} ms late (in-flight slots full)` +
        (keptUp ? '' : ` - the gateway did NOT keep up with ${rate}/s`) +
        (bare.keptUpWithRate
          ? ''
          : ` (nor did bare aedes: sent ${bare.sentRate}/s, ${(bare.lateShare * 100).toFixed(1)}% late)`) +
        `; ${cloud.inWindow}/${gatewayLoad.sent} window messages found at the cloud; ` +
        `stages p50/p99/p99.9 (gateway histograms, measured window): ` +
        Object.entries(stages)
          .map(([stage, q]) => `${stage} ${q.p50}/${q.p99}/${q.p999} ms`)
          .join(', ') +
        `; durability=${values.durability}`,
    };
    printReport(report, values.json!);
    return report;
  } finally {
    await killAll();
    await stopChildren();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The share of the window's messages that left more than two ticks behind their schedule. */
function lateShare(load: LoadResult): number {
  return (load.scheduleLagMs?.late ?? 0) / Math.max(1, load.sent ?? 0);
}

/**
 * Over the sink's records: commit time minus send time (the payload's first 8 bytes) of those sent in
 * `window`, and how many records were committed per second within it.
 */
function commitLatency(
  cloudData: string,
  window: { from: number; to: number },
): {
  latencyMs: Percentiles;
  fromScheduleMs: Percentiles;
  inWindow: number;
  committedRate: number;
  over2s: Array<{ from: number; p99: number; max: number }>;
} {
  const histogram = latencyHistogram();
  const scheduled = latencyHistogram();
  const slices = new Map<number, number[]>();
  let inWindow = 0;
  let committedInWindow = 0;
  for (const record of exportSqliteSink(cloudData)) {
    if (record.receivedTime >= window.from && record.receivedTime < window.to) committedInWindow++;
    const payload = Buffer.from(record.payload, 'base64');
    const sent = payload.readDoubleLE(0);
    if (sent < window.from || sent >= window.to) continue;
    inWindow++;
    recordMs(histogram, record.receivedTime - sent);
    const slice = Math.floor((sent - window.from) / 2000);
    let list = slices.get(slice);
    if (!list) slices.set(slice, (list = []));
    list.push(record.receivedTime - sent);
    recordMs(scheduled, record.receivedTime - payload.readDoubleLE(8));
  }
  // p99 and max of the messages sent in each 2 s of the window: a steady tail, or stalls at some moments.
  const over2s = [...slices.entries()]
    .sort(([a], [b]) => a - b)
    .map(([slice, list]) => {
      list.sort((a, b) => a - b);
      return { from: slice * 2, p99: +list[Math.floor(list.length * 0.99)]!.toFixed(1), max: +list.at(-1)!.toFixed(1) };
    });
  return {
    latencyMs: percentilesMs(histogram),
    fromScheduleMs: percentilesMs(scheduled),
    inWindow,
    over2s,
    committedRate: Math.round(committedInWindow / ((window.to - window.from) / 1000)),
  };
}

/** CPU cores each process used over the loader's measured window; `onEvent` goes to runLoader. */
function coresInWindow(pids: Record<string, number>): { onEvent: (event: string) => void; cores: () => Record<string, number> } {
  const marks: Record<string, { at: number; cpu: Record<string, number> }> = {};
  const read = () => Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid)]));
  return {
    onEvent: (event) => {
      if (event === 'measuring' || event === 'measured') marks[event] = { at: performance.now(), cpu: read() };
    },
    cores: () => {
      const from = marks.measuring;
      const to = marks.measured;
      if (!from || !to) return {};
      const seconds = (to.at - from.at) / 1000;
      return Object.fromEntries(
        Object.keys(pids).map((name) => [name, +((to.cpu[name]! - from.cpu[name]!) / seconds).toFixed(2)]),
      );
    },
  };
}
