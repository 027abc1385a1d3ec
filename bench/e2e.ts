/**
 * `npm run bench -- e2e`: MQTT QoS 1 ingest, 100 connections, 100-byte payloads, as fast as PUBACKs allow.
 * Baselines: a bare aedes broker (no journal, no forwarding), and Debian's mosquitto when it is installed (no
 * persistence; skipped, with the reason in the report, when it is not). Then the same loader through a
 * fleetgate gateway to a cloud-stub. The gateway's figure is the rate of records committed at the cloud-stub;
 * the ratios are that over each baseline's PUBACK rate (goals: >= 0.8x bare aedes, >= 1.5x mosquitto). All in
 * the same run, on the same machine.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { killAll, portOf, startFleetgate } from '../test/support/fleetgate-process.ts';
import { cpuSeconds, runLoader, startServer, stopChildren, type ChildServer } from './lib/children.ts';
import { findMosquitto, startMosquitto } from './lib/mosquitto.ts';
import type { LoadResult, LoadSettings } from './lib/mqtt-load.ts';
import { benchGatewayArgs } from './lib/fleetgate-stack.ts';
import { printReport, type BenchReport } from './lib/report.ts';

export async function e2e(argv: string[]): Promise<BenchReport> {
  const { values } = parseArgs({
    args: argv,
    options: {
      connections: { type: 'string', default: '100' },
      // Unacknowledged QoS 1 publishes per connection: 20 is mosquitto's default max_inflight_messages.
      inflight: { type: 'string', default: '20' },
      payload: { type: 'string', default: '100' },
      seconds: { type: 'string', default: '10' },
      /** Every Nth connection speaks MQTT 5 (0: all 3.1.1; 2: half of them), against every broker of the run. */
      'mqtt5-every': { type: 'string', default: '0' },
      warmup: { type: 'string', default: '3' },
      durability: { type: 'string', default: 'power' },
      json: { type: 'boolean', default: false },
      /** Extra flags for `fleetgate gateway`, e.g. --gateway-arg=--uplink-window --gateway-arg=16 */
      'gateway-arg': { type: 'string', multiple: true, default: [] },
      /** NODE_OPTIONS of the gateway process only (heap flags to compare). */
      'gateway-node-options': { type: 'string', default: '' },
    },
  });
  const load = (port: number, clientPrefix: string): LoadSettings => ({
    host: '127.0.0.1',
    port,
    clientPrefix,
    connections: Number(values.connections),
    inflight: Number(values.inflight),
    payloadBytes: Number(values.payload),
    warmupSeconds: Number(values.warmup),
    seconds: Number(values.seconds),
    mqtt5Every: Number(values['mqtt5-every']),
  });

  /** The loader against a baseline broker; with the broker's CPU time over the measured window. */
  const baseline = async (server: ChildServer, clientPrefix: string): Promise<{ result: LoadResult; windowCpu: number }> => {
    let windowCpu = 0;
    try {
      let atStart = 0;
      const result = await runLoader(load(server.port, clientPrefix), (event) => {
        if (event === 'measuring') atStart = cpuSeconds(server.pid);
        if (event === 'measured') windowCpu = cpuSeconds(server.pid) - atStart;
      });
      return { result, windowCpu };
    } finally {
      await server.stop();
    }
  };

  // Baselines: bare aedes, then mosquitto if installed.
  let bareResult: LoadResult;
  let bareWindowCpu: number;
  let mosquitto: { result: LoadResult; windowCpu: number } | undefined;
  const mosquittoBin = findMosquitto();
  try {
    ({ result: bareResult, windowCpu: bareWindowCpu } = await baseline(
      await startServer(new URL('./servers/bare-aedes.js', import.meta.url)),
      'bare-',
    ));
    if (mosquittoBin.bin) mosquitto = await baseline(await startMosquitto(mosquittoBin.bin), 'mosq-');
    else process.stderr.write(`mosquitto baseline skipped: ${mosquittoBin.why}\n`);
  } finally {
    await stopChildren();
  }

  // fleetgate: gateway -> cloud-stub, each its own process, durable journal and sink.
  const dir = mkdtempSync(join(tmpdir(), 'fleetgate-bench-'));
  try {
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
        join(dir, 'cloud'),
        '--durability',
        values.durability!,
      ],
      'cloud-stub ready',
    );
    const cloudAdmin = `http://127.0.0.1:${portOf(cloud.ready.admin)}`;
    const gateway = await startFleetgate(
      'gateway',
      benchGatewayArgs(portOf(cloud.ready.listen), join(dir, 'gateway'), values.durability!, values['gateway-arg']!),
      'gateway ready',
      values['gateway-node-options'] ? { NODE_OPTIONS: values['gateway-node-options'] } : {},
    );
    const cloudRecords = async () => ((await (await fetch(`${cloudAdmin}/v1/stats`)).json()) as { records: number }).records;
    const marks: Record<string, { at: number; records: number; gatewayCpu: number; cloudCpu: number }> = {};
    const pending: Promise<void>[] = [];
    const result = await runLoader(load(portOf(gateway.ready.mqtt), 'dev-'), (event) => {
      const at = performance.now();
      const gatewayCpu = cpuSeconds(gateway.process.pid);
      const cloudCpu = cpuSeconds(cloud.process.pid);
      pending.push(cloudRecords().then((records) => void (marks[event] = { at, records, gatewayCpu, cloudCpu })));
    });
    await Promise.all(pending);
    const start = marks.measuring!;
    const end = marks.measured!;
    const committedRate = Math.round((end.records - start.records) / ((end.at - start.at) / 1000));
    // Every PUBACKed message must reach the cloud: wait for the tail to drain, then compare.
    const deadline = Date.now() + 60_000;
    let committed = await cloudRecords();
    while (committed < result.totalAcked && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      committed = await cloudRecords();
    }
    const seconds = (end.at - start.at) / 1000;
    // Per core: on a 2-core machine the loader and the cloud-stub share the cores with what is measured, so the
    // rate alone says as much about them as about the gateway. Messages per CPU-second of the broker under test
    // compares the work each does per message (issue 16's target: the gateway >= 0.8x bare aedes).
    const gatewayCores = (end.gatewayCpu - start.gatewayCpu) / seconds;
    const bareCores = bareWindowCpu / Number(values.seconds);
    const perCore = {
      gatewayCommittedPerCore: Math.round(committedRate / gatewayCores),
      bareAedesPerCore: Math.round(bareResult.rate / bareCores),
      ratio: +(committedRate / gatewayCores / (bareResult.rate / bareCores)).toFixed(2),
    };
    const report: BenchReport = {
      name: 'e2e',
      settings: { ...values },
      figures: {
        bareAedesRate: bareResult.rate,
        mosquittoRate: mosquitto ? mosquitto.result.rate : `skipped: ${mosquittoBin.why}`,
        gatewayPubackRate: result.rate,
        gatewayCommittedRate: committedRate,
        ratio: +(committedRate / bareResult.rate).toFixed(3),
        ratioToMosquitto: mosquitto ? +(committedRate / mosquitto.result.rate).toFixed(3) : null,
        goalsMet: {
          vsBareAedes: committedRate >= 0.8 * bareResult.rate,
          vsMosquitto: mosquitto ? committedRate >= 1.5 * mosquitto.result.rate : null,
        },
        perCore,
        bareLatencyMs: bareResult.latencyMs,
        ...(mosquitto ? { mosquittoLatencyMs: mosquitto.result.latencyMs } : {}),
        gatewayLatencyMs: result.latencyMs,
        cpuCoresInWindow: {
          bareAedes: +(bareWindowCpu / Number(values.seconds)).toFixed(2),
          bareLoader: +(bareResult.cpuSeconds / Number(values.seconds)).toFixed(2),
          ...(mosquitto
            ? {
                mosquitto: +(mosquitto.windowCpu / Number(values.seconds)).toFixed(2),
                mosquittoLoader: +(mosquitto.result.cpuSeconds / Number(values.seconds)).toFixed(2),
              }
            : {}),
          gateway: +((end.gatewayCpu - start.gatewayCpu) / seconds).toFixed(2),
          cloud: +((end.cloudCpu - start.cloudCpu) / seconds).toFixed(2),
          loader: +(result.cpuSeconds / Number(values.seconds)).toFixed(2),
        },
        pubackedTotal: result.totalAcked,
        committedAtCloud: committed,
        everyPubackedMessageArrived: committed >= result.totalAcked,
      },
      summary:
        `bare aedes ${bareResult.rate} msg/s; ` +
        (mosquitto
          ? `mosquitto ${mosquitto.result.rate} msg/s` +
            // One loader process is one thread: at a full core, it (not mosquitto) may be what the figure measures.
            (mosquitto.result.cpuSeconds / Number(values.seconds) >= 0.9 ? ' (loader-bound: its loader used a full core)' : '') +
            '; '
          : `mosquitto skipped (${mosquittoBin.why}); `) +
        `gateway -> cloud ${committedRate} msg/s committed (PUBACK rate ${result.rate}); ` +
        `ratio to bare aedes ${(committedRate / bareResult.rate).toFixed(2)} (target >= 0.8)` +
        `; per core: gateway ${perCore.gatewayCommittedPerCore} msg/s over ${gatewayCores.toFixed(2)} cores, bare aedes ` +
        `${perCore.bareAedesPerCore} over ${bareCores.toFixed(2)}: ${perCore.ratio}x` +
        (mosquitto ? `, to mosquitto ${(committedRate / mosquitto.result.rate).toFixed(2)} (target >= 1.5)` : '') +
        `; publish->PUBACK p50/p99: bare ${bareResult.latencyMs.p50}/${bareResult.latencyMs.p99} ms, ` +
        (mosquitto ? `mosquitto ${mosquitto.result.latencyMs.p50}/${mosquitto.result.latencyMs.p99} ms, ` : '') +
        `gateway ${result.latencyMs.p50}/${result.latencyMs.p99} ms; durability=${values.durability}`,
    };
    await gateway.process.stop();
    await cloud.process.stop();
    printReport(report, values.json!);
    return report;
  } finally {
    await killAll();
    await stopChildren();
    rmSync(dir, { recursive: true, force: true });
  }
}
