/**
 * `npm run bench -- upstreams`: what several upstreams cost, and that one being down holds nothing back.
 * The e2e loader (100 connections, QoS 1, 100-byte payloads) through a gateway configured from a YAML file:
 *   one     one upstream (the baseline, measured in the same run)
 *   both    two upstreams, every record routed to both (each its own cloud-stub, cursor and acks)
 *   down    the same two, the second never started: the journal keeps every row for it, the first keeps up
 * The figure of each run is the rate of records committed at the (first) cloud-stub over the measured window,
 * and for `both` the slower of the two.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { killAll, portOf, startFleetgate, type Started } from '../test/support/fleetgate-process.ts';
import { cpuSeconds, runLoader, stopChildren } from './lib/children.ts';
import type { LoadSettings } from './lib/mqtt-load.ts';
import { printReport, type BenchReport } from './lib/report.ts';
import { freePort } from '../test/support/free-port.ts';

type Mode = 'one' | 'both' | 'down';

interface RunFigures {
  /** Records committed per second at each started cloud-stub over the measured window. */
  committedRate: number[];
  pubackRate: number;
  gatewayCores: number;
  /** Rows the journal held at the end of the window (kept for an upstream that is down). */
  journalRows: number;
  everyPubackedMessageArrived: boolean;
}

export async function upstreams(argv: string[]): Promise<BenchReport> {
  const { values } = parseArgs({
    args: argv,
    options: {
      connections: { type: 'string', default: '100' },
      inflight: { type: 'string', default: '20' },
      payload: { type: 'string', default: '100' },
      seconds: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '3' },
      durability: { type: 'string', default: 'power' },
      json: { type: 'boolean', default: false },
    },
  });
  const load = (port: number): LoadSettings => ({
    host: '127.0.0.1',
    port,
    clientPrefix: 'dev-',
    connections: Number(values.connections),
    inflight: Number(values.inflight),
    payloadBytes: Number(values.payload),
    warmupSeconds: Number(values.warmup),
    seconds: Number(values.seconds),
  });

  const run = async (mode: Mode): Promise<RunFigures> => {
    const dir = mkdtempSync(join(tmpdir(), `fleetgate-bench-${mode}-`));
    try {
      const startCloud = (name: string, port: number) =>
        startFleetgate(
          `cloud-${name}`,
          [
            'cloud',
            '--allow-anonymous',
            '--listen',
            `127.0.0.1:${port}`,
            '--admin',
            '127.0.0.1:0',
            '--data',
            join(dir, name),
            '--durability',
            values.durability!,
          ],
          'cloud-stub ready',
        );
      const clouds: Started[] = [await startCloud('a', 0)];
      if (mode === 'both') clouds.push(await startCloud('b', 0));
      const addresses = [`127.0.0.1:${portOf(clouds[0]!.ready.listen)}`];
      if (mode === 'both') addresses.push(`127.0.0.1:${portOf(clouds[1]!.ready.listen)}`);
      if (mode === 'down') addresses.push(`127.0.0.1:${await freePort()}`);
      const config = join(dir, 'gateway.yaml');
      mkdirSync(join(dir, 'gateway'));
      writeFileSync(
        config,
        stringify({
          'gateway-id': 'bench',
          'allow-anonymous': true,
          mqtt: '127.0.0.1:0',
          'device-grpc': 'off',
          admin: '127.0.0.1:0',
          data: join(dir, 'gateway'),
          durability: values.durability,
          upstreams: addresses.map((address, i) => ({ name: `up-${i}`, address })),
        }),
      );
      const gateway = await startFleetgate('gateway', ['gateway', '--config', config], 'gateway ready');
      const admin = async <T>(started: Started, path: string) =>
        (await (await fetch(`http://127.0.0.1:${portOf(started.ready.admin)}${path}`)).json()) as T;
      const records = () =>
        Promise.all(clouds.map(async (cloud) => (await admin<{ records: number }>(cloud, '/v1/stats')).records));
      const marks: Record<string, { at: number; records: number[]; cpu: number; rows: number }> = {};
      const pending: Promise<void>[] = [];
      const result = await runLoader(load(portOf(gateway.ready.mqtt)), (event) => {
        const at = performance.now();
        const cpu = cpuSeconds(gateway.process.pid);
        pending.push(
          Promise.all([records(), admin<{ journal: { rows: number } }>(gateway, '/v1/stats')]).then(
            ([r, stats]) => void (marks[event] = { at, records: r, cpu, rows: stats.journal.rows }),
          ),
        );
      });
      await Promise.all(pending);
      const start = marks.measuring!;
      const end = marks.measured!;
      const seconds = (end.at - start.at) / 1000;
      // Every PUBACKed message must reach every started cloud-stub.
      const deadline = Date.now() + 60_000;
      let arrived = await records();
      while (Math.min(...arrived) < result.totalAcked && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        arrived = await records();
      }
      await gateway.process.stop();
      for (const cloud of clouds) await cloud.process.stop();
      return {
        committedRate: end.records.map((r, i) => Math.round((r - start.records[i]!) / seconds)),
        pubackRate: result.rate,
        gatewayCores: +((end.cpu - start.cpu) / seconds).toFixed(2),
        journalRows: end.rows,
        everyPubackedMessageArrived: Math.min(...arrived) >= result.totalAcked,
      };
    } finally {
      await killAll();
      await stopChildren();
      rmSync(dir, { recursive: true, force: true });
    }
  };

  const one = await run('one');
  const both = await run('both');
  const down = await run('down');
  const bothRate = Math.min(...both.committedRate);
  const report: BenchReport = {
    name: 'upstreams',
    settings: { ...values },
    figures: {
      one,
      both,
      down,
      ratioBothToOne: +(bothRate / one.committedRate[0]!).toFixed(3),
      ratioDownToOne: +(down.committedRate[0]! / one.committedRate[0]!).toFixed(3),
    },
    summary:
      `one upstream ${one.committedRate[0]} msg/s committed (baseline); ` +
      `two upstreams, each record to both: ${both.committedRate.join(' / ')} msg/s (${(bothRate / one.committedRate[0]!).toFixed(2)}x); ` +
      `second upstream down: the first ${down.committedRate[0]} msg/s (${(down.committedRate[0]! / one.committedRate[0]!).toFixed(2)}x), ` +
      `${down.journalRows} rows kept for the one that is down; gateway cores ${one.gatewayCores} / ${both.gatewayCores} / ${down.gatewayCores}; ` +
      `every PUBACKed message arrived: ${[one, both, down].every((r) => r.everyPubackedMessageArrived)}; durability=${values.durability}`,
  };
  printReport(report, values.json!);
  return report;
}
