/**
 * `npm run bench -- jetstream`: how fast records go into a 3-node NATS JetStream cluster (R3, real nats-server
 * processes on this machine) through one cloud-stub replica and through two, against the SQLite sink in the
 * same run. Each gateway starts on a journal already holding `--records` (a backlog, so the gateways send as
 * fast as the backend acks); the figure is records committed per second until the backend holds all of them.
 * `--gateways` gateways share the replicas (gateway i -> replica i mod n).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { killAll, portOf, startFleetgate, type Started } from '../test/support/fleetgate-process.ts';
import { NatsCluster } from '../test/support/nats-cluster.ts';
import { fillJournal } from './replay.ts';
import { printReport, type BenchReport } from './lib/report.ts';

interface Run {
  records: number;
  seconds: number;
  rate: number;
}

export async function jetstream(argv: string[]): Promise<BenchReport> {
  const { values } = parseArgs({
    args: argv,
    options: {
      records: { type: 'string', default: '100000' },
      gateways: { type: 'string', default: '4' },
      payload: { type: 'string', default: '100' },
      json: { type: 'boolean', default: false },
    },
  });
  const perGateway = Number(values.records);
  const gateways = Number(values.gateways);
  const payload = Number(values.payload);
  const dir = mkdtempSync(join(tmpdir(), 'fleetgate-bench-js-'));
  let cluster: NatsCluster | undefined;
  try {
    const run = async (name: string, replicaArgs: string[][]): Promise<Run> => {
      const base = join(dir, name);
      for (let g = 0; g < gateways; g++) fillJournal(join(base, `gw-${g}`), perGateway, payload);
      const replicas: Started[] = [];
      for (const [i, args] of replicaArgs.entries()) {
        replicas.push(
          await startFleetgate(
            `cloud-${i}`,
            [
              'cloud',
              '--allow-anonymous',
              '--listen',
              '127.0.0.1:0',
              '--admin',
              '127.0.0.1:0',
              '--data',
              join(base, `cloud-${i}`),
              ...args,
            ],
            'cloud-stub ready',
          ),
        );
      }
      const admin = `http://127.0.0.1:${portOf(replicas[0]!.ready.admin)}`;
      const held = async () => ((await (await fetch(`${admin}/v1/stats`)).json()) as { records: number }).records;
      const before = await held();
      await Promise.all(
        Array.from({ length: gateways }, (_, g) =>
          startFleetgate(
            `gateway-${g}`,
            [
              'gateway',
              '--gateway-id',
              `${name}-gw-${g}`,
              '--allow-anonymous',
              '--mqtt',
              '127.0.0.1:0',
              '--admin',
              '127.0.0.1:0',
              '--device-grpc',
              'off',
              '--upstream',
              `127.0.0.1:${portOf(replicas[g % replicas.length]!.ready.listen)}`,
              '--data',
              join(base, `gw-${g}`),
            ],
            'gateway ready',
          ),
        ),
      );
      // Timed from when every gateway is up (they start in parallel, and tsx start-up is not the sink's cost).
      const started = performance.now();
      const atStart = await held();
      const total = perGateway * gateways;
      const deadline = Date.now() + 300_000;
      let now = before;
      while (now - before < total && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        now = await held();
      }
      const seconds = (performance.now() - started) / 1000;
      await killAll();
      if (now - before < total) throw new Error(`${name}: only ${now - before} of ${total} records arrived within 300 s`);
      process.stderr.write(
        `${name}: ${total - (atStart - before)} records in ${seconds.toFixed(1)} s (after all gateways were up)\n`,
      );
      const timed = total - (atStart - before);
      return { records: timed, seconds: +seconds.toFixed(2), rate: Math.round(timed / seconds) };
    };

    const sqlite = await run('sqlite', [['--durability', 'power']]);
    cluster = await NatsCluster.start({ dir: join(dir, 'nats') });
    const nats = ['--sink', 'jetstream', '--nats', cluster.urls.join(',')];
    const one = await run('js-one', [[...nats, '--stream', 'BENCH1']]);
    const two = await run('js-two', [
      [...nats, '--stream', 'BENCH2'],
      [...nats, '--stream', 'BENCH2'],
    ]);
    const report: BenchReport = {
      name: 'jetstream',
      settings: { ...values, cluster: '3 nats-server nodes, R3 stream, this machine' },
      figures: {
        sqlite,
        jetstreamOneReplica: one,
        jetstreamTwoReplicas: two,
        oneVsSqlite: +(one.rate / sqlite.rate).toFixed(2),
        twoVsOne: +(two.rate / one.rate).toFixed(2),
      },
      summary:
        `SQLite sink ${sqlite.rate} rec/s; JetStream R3 through one replica ${one.rate} rec/s (${(one.rate / sqlite.rate).toFixed(2)}x SQLite), ` +
        `through two ${two.rate} rec/s (${(two.rate / one.rate).toFixed(2)}x one); ${gateways} gateways x ${perGateway} records of ${payload} bytes`,
    };
    printReport(report, values.json!);
    return report;
  } finally {
    await killAll();
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
