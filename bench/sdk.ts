/**
 * `npm run bench -- sdk`: device-SDK devices through a gateway to a cloud-stub, next to MQTT devices through
 * the same gateway in the same run: 100 devices each way, 100-byte payloads, 20 sends unresolved per device.
 * The figure for each path is the rate of records committed at the cloud-stub; latency is send -> commit
 * acknowledged (SDK: send() resolving; MQTT: PUBACK).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { killAll, portOf, startFleetgate } from '../test/support/fleetgate-process.ts';
import { cpuSeconds, runLoader } from './lib/children.ts';
import type { LoadResult, LoadSettings } from './lib/mqtt-load.ts';
import { printReport, type BenchReport } from './lib/report.ts';

export async function sdk(argv: string[]): Promise<BenchReport> {
  const { values } = parseArgs({
    args: argv,
    options: {
      devices: { type: 'string', default: '100' },
      inflight: { type: 'string', default: '20' },
      payload: { type: 'string', default: '100' },
      seconds: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '3' },
      durability: { type: 'string', default: 'power' },
      json: { type: 'boolean', default: false },
    },
  });
  const dir = mkdtempSync(join(tmpdir(), 'fleetgate-bench-sdk-'));
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
      [
        'gateway',
        '--gateway-id',
        'bench',
        '--allow-anonymous',
        '--mqtt',
        '127.0.0.1:0',
        '--device-grpc',
        '127.0.0.1:0',
        '--admin',
        '127.0.0.1:0',
        '--upstream',
        `127.0.0.1:${portOf(cloud.ready.listen)}`,
        '--data',
        join(dir, 'gateway'),
        '--durability',
        values.durability!,
      ],
      'gateway ready',
    );
    const cloudRecords = async () => ((await (await fetch(`${cloudAdmin}/v1/stats`)).json()) as { records: number }).records;
    const measure = async (kind: 'sdk' | 'mqtt', port: number) => {
      const settings: LoadSettings = {
        host: '127.0.0.1',
        port,
        clientPrefix: `${kind}-`,
        connections: Number(values.devices),
        inflight: Number(values.inflight),
        payloadBytes: Number(values.payload),
        warmupSeconds: Number(values.warmup),
        seconds: Number(values.seconds),
      };
      const marks: Record<string, { at: number; records: number; gatewayCpu: number }> = {};
      const pending: Promise<void>[] = [];
      const result: LoadResult = await runLoader(
        settings,
        (event) => {
          const at = performance.now();
          const gatewayCpu = cpuSeconds(gateway.process.pid);
          pending.push(cloudRecords().then((records) => void (marks[event] = { at, records, gatewayCpu })));
        },
        kind,
      );
      await Promise.all(pending);
      const seconds = (marks.measured!.at - marks.measuring!.at) / 1000;
      return {
        result,
        committedRate: Math.round((marks.measured!.records - marks.measuring!.records) / seconds),
        gatewayCores: +((marks.measured!.gatewayCpu - marks.measuring!.gatewayCpu) / seconds).toFixed(2),
        loaderCores: +(result.cpuSeconds / Number(values.seconds)).toFixed(2),
      };
    };
    const sdkRun = await measure('sdk', portOf(gateway.ready.deviceGrpc));
    const mqttRun = await measure('mqtt', portOf(gateway.ready.mqtt));
    const report: BenchReport = {
      name: 'sdk',
      settings: { ...values },
      figures: {
        sdk: {
          committedRate: sdkRun.committedRate,
          sendRate: sdkRun.result.rate,
          latencyMs: sdkRun.result.latencyMs,
          gatewayCores: sdkRun.gatewayCores,
          loaderCores: sdkRun.loaderCores,
        },
        mqtt: {
          committedRate: mqttRun.committedRate,
          pubackRate: mqttRun.result.rate,
          latencyMs: mqttRun.result.latencyMs,
          gatewayCores: mqttRun.gatewayCores,
          loaderCores: mqttRun.loaderCores,
        },
        sdkToMqtt: +(sdkRun.committedRate / mqttRun.committedRate).toFixed(3),
      },
      summary:
        `SDK ${sdkRun.committedRate} msg/s committed, send->commit p50/p99 ${sdkRun.result.latencyMs.p50}/${sdkRun.result.latencyMs.p99} ms; ` +
        `MQTT ${mqttRun.committedRate} msg/s committed, PUBACK p50/p99 ${mqttRun.result.latencyMs.p50}/${mqttRun.result.latencyMs.p99} ms; ` +
        `SDK/MQTT ${(sdkRun.committedRate / mqttRun.committedRate).toFixed(2)}; ${values.devices} devices each, ${values.inflight} in flight each, durability=${values.durability}`,
    };
    await gateway.process.stop();
    await cloud.process.stop();
    printReport(report, values.json!);
    return report;
  } finally {
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  }
}
