/**
 * `npm run bench -- connections`: 10,000 MQTT devices connecting to the gateway at once (a connect storm, as
 * after a site's power comes back). Figures: the time until every CONNACK, each connection's TCP connect ->
 * CONNACK, the attempts retried or failed, the gateway's RSS before and after; then, with all of them up, each
 * device sends one QoS 1 publish and every PUBACK must arrive (the time that takes), and they stay connected
 * and silent for a few seconds: a connection the gateway closes meanwhile counts as dropped.
 * The kernel's listen-queue counters (ListenOverflows, ListenDrops, SYN cookies, SYN retransmits) are read
 * around each storm: a full accept queue (Node listens with a backlog of 511) shows there, and as the 1 s / 3 s
 * steps of SYN or SYN-ACK retransmission in the per-connection times. They count for the whole machine, not
 * this benchmark alone. So each broker meets the devices twice, a fresh process each time: all 10,000 at once
 * (the storm), then at most `--concurrency` (256) connection attempts under way at a time (what the broker
 * accepts when the listen queue never overflows).
 * The gateway gets --max-connections above the device count; file descriptors: it inherits this process's
 * limit, reported. Baseline, same run: a bare aedes broker, the same storms.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { killAll } from '../test/support/fleetgate-process.ts';
import { cpuSeconds, runLoader, startServer, stopChildren } from './lib/children.ts';
import { startStack } from './lib/fleetgate-stack.ts';
import type { LoadResult, LoadSettings } from './lib/mqtt-load.ts';
import { median, MemorySampler, tcpCounters, tcpCountersSince } from './lib/proc-stats.ts';
import { printReport, type BenchReport } from './lib/report.ts';

interface StormRun {
  /** Until the last CONNACK, ms. */
  stormMs: number;
  connectLatencyMs: NonNullable<LoadResult['connect']>['latencyMs'];
  connected: number;
  retried: number;
  failed: number;
  errors: Record<string, number>;
  /** One publish each: first publish -> last PUBACK, ms (null if not every PUBACK arrived in time). */
  allPubackedMs: number | null;
  unanswered: number;
  dropped: number;
  /** Devices the gateway counted as connected, after the storm and at the end of the hold. */
  reportedConnected?: { afterStorm: number; afterHold: number };
  rssMB: { before: number; connected: number; afterPublish: number; peak: number };
  rssPerConnectionKB: number;
  /** CPU cores used from the first connect to the last CONNACK, per process (the gateway's cloud-stub too). */
  coresInStorm: Record<string, number>;
  tcp: Record<string, number>;
  maxOpenFiles: string;
}

/** A broker under test: started fresh for each storm. */
interface Target {
  pids: Record<string, number>;
  port: number;
  connectedNow?: () => Promise<number>;
  stop: () => Promise<void>;
}

export async function connections(argv: string[]): Promise<BenchReport> {
  const { values } = parseArgs({
    args: argv,
    options: {
      devices: { type: 'string', default: '10000' },
      'max-connections': { type: 'string', default: '12000' },
      /** Connection attempts under way at once in the second pass (0: skip it). */
      concurrency: { type: 'string', default: '256' },
      payload: { type: 'string', default: '100' },
      /** Seconds connected and silent before the publish, and after it. */
      idle: { type: 'string', default: '2' },
      hold: { type: 'string', default: '4' },
      durability: { type: 'string', default: 'power' },
      json: { type: 'boolean', default: false },
      'gateway-arg': { type: 'string', multiple: true, default: [] },
    },
  });
  const devices = Number(values.devices);
  const settings = (port: number, clientPrefix: string, connectConcurrency: number): LoadSettings => ({
    host: '127.0.0.1',
    port,
    clientPrefix,
    connectConcurrency,
    connections: devices,
    inflight: 1,
    once: true,
    payloadBytes: Number(values.payload),
    warmupSeconds: 0,
    seconds: 60,
    idleSeconds: Number(values.idle),
    holdSeconds: Number(values.hold),
    connectRetries: 2,
  });

  const storm = async (target: Target, load: LoadSettings): Promise<StormRun> => {
    const pid = Object.values(target.pids)[0]!;
    const connectedNow = target.connectedNow;
    const sampler = new MemorySampler(pid, 250);
    try {
      sampler.enter('before');
      await sleep(1500);
      const tcpBefore = tcpCounters();
      const cpu = (): Record<string, number> =>
        Object.fromEntries(Object.entries(target.pids).map(([name, p]) => [name, cpuSeconds(p)]));
      const cpuBefore = cpu();
      let coresInStorm: Record<string, number> = {};
      sampler.enter('storm');
      const reported: Promise<number>[] = [];
      const result = await runLoader(load, (event, data) => {
        if (event === 'connected') {
          const seconds = data.ms! / 1000;
          const cpuAfter = cpu();
          coresInStorm = Object.fromEntries(
            Object.keys(cpuAfter).map((name) => [name, +((cpuAfter[name]! - cpuBefore[name]!) / seconds).toFixed(2)]),
          );
          sampler.enter('connected');
          if (connectedNow) reported.push(connectedNow());
        }
        if (event === 'measuring') sampler.enter('publishing');
        if (event === 'holding') {
          sampler.enter('holding');
          if (connectedNow) reported.push(sleep(Number(values.hold) * 500).then(connectedNow));
        }
      });
      const tcp = tcpCountersSince(tcpBefore);
      const [afterStorm, afterHold] = await Promise.all(reported);
      const before = median(sampler.inPhase('before').map((s) => s.rssMB));
      const connected = median(sampler.inPhase('connected').map((s) => s.rssMB));
      const connect = result.connect!;
      return {
        stormMs: connect.ms,
        connectLatencyMs: connect.latencyMs,
        connected: connect.connections,
        retried: connect.retried,
        failed: connect.failed,
        errors: connect.errors,
        allPubackedMs: result.onceMs ?? null,
        unanswered: result.unanswered,
        dropped: result.dropped ?? 0,
        ...(connectedNow ? { reportedConnected: { afterStorm: afterStorm!, afterHold: afterHold! } } : {}),
        rssMB: {
          before,
          connected,
          afterPublish: median(sampler.inPhase('holding').map((s) => s.rssMB)),
          peak: sampler.peakMB(),
        },
        rssPerConnectionKB: +(((connected - before) * 1024) / connect.connections).toFixed(1),
        coresInStorm: { ...coresInStorm, loader: +(connect.cpuSeconds / (connect.ms / 1000)).toFixed(2) },
        tcp,
        maxOpenFiles: maxOpenFiles(pid),
      };
    } finally {
      sampler.stop();
    }
  };

  const dir = mkdtempSync(join(tmpdir(), 'fleetgate-bench-connections-'));
  let stacks = 0;
  const bareAedes = async (): Promise<Target> => {
    const bare = await startServer(new URL('./servers/bare-aedes.js', import.meta.url));
    return { pids: { aedes: bare.pid }, port: bare.port, stop: bare.stop };
  };
  const fleetgate = async (): Promise<Target> => {
    const stack = await startStack(join(dir, `stack-${++stacks}`), {
      durability: values.durability!,
      gatewayArgs: ['--max-connections', values['max-connections']!, ...values['gateway-arg']!],
    });
    return {
      pids: { gateway: stack.gateway.process.pid, cloud: stack.cloud.process.pid },
      port: stack.mqttPort,
      connectedNow: async () => (await stack.gatewayStats()).devicesConnected,
      stop: stack.stop,
    };
  };
  const run = async (start: () => Promise<Target>, prefix: string, concurrency: number): Promise<StormRun> => {
    const target = await start();
    try {
      return await storm(target, settings(target.port, prefix, concurrency));
    } finally {
      await target.stop();
    }
  };
  try {
    const concurrency = Number(values.concurrency);
    const bareRun = await run(bareAedes, 'bare-', 0);
    const gateway = await run(fleetgate, 'conn-', 0);
    const bareCapped = concurrency > 0 ? await run(bareAedes, 'bare-', concurrency) : undefined;
    const gatewayCapped = concurrency > 0 ? await run(fleetgate, 'conn-', concurrency) : undefined;

    const allGood = (r: StormRun) =>
      r.connected === devices && r.failed === 0 && r.dropped === 0 && r.unanswered === 0 && r.allPubackedMs !== null;
    const capped = (r: StormRun | undefined) =>
      r
        ? `${(r.stormMs / 1000).toFixed(2)} s (p99 ${r.connectLatencyMs.p99} ms, ${r.tcp.ListenOverflows ?? '?'} overflows)`
        : 'skipped';
    const report: BenchReport = {
      name: 'connections',
      settings: { ...values },
      figures: {
        gateway,
        bareAedes: bareRun,
        stormRatio: +(gateway.stormMs / bareRun.stormMs).toFixed(2),
        rssConnectedRatio: +(gateway.rssMB.connected / bareRun.rssMB.connected).toFixed(2),
        ...(gatewayCapped && bareCapped
          ? {
              capped: {
                concurrency,
                gateway: gatewayCapped,
                bareAedes: bareCapped,
                stormRatio: +(gatewayCapped.stormMs / bareCapped.stormMs).toFixed(2),
              },
            }
          : {}),
        allConnectedPubackedAndStayed: {
          gateway: allGood(gateway) && (!gatewayCapped || allGood(gatewayCapped)),
          bareAedes: allGood(bareRun) && (!bareCapped || allGood(bareCapped)),
        },
      },
      summary:
        `${devices} devices at once: gateway storm ${(gateway.stormMs / 1000).toFixed(2)} s to the last CONNACK ` +
        `(connect p50/p99/max ${gateway.connectLatencyMs.p50}/${gateway.connectLatencyMs.p99}/${gateway.connectLatencyMs.max} ms, ` +
        `${gateway.retried} retried, ${gateway.failed} failed, ${gateway.tcp.ListenOverflows ?? '?'} listen overflows, ` +
        `${gateway.tcp.TCPSynRetrans ?? '?'} SYN retransmits), one publish each all PUBACKed in ${gateway.allPubackedMs ?? 'NOT all'} ms, ` +
        `${gateway.dropped} dropped; RSS ${gateway.rssMB.before} -> ${gateway.rssMB.connected} MB connected (${gateway.rssPerConnectionKB} KB each), ` +
        `${gateway.rssMB.afterPublish} MB after the publish; bare aedes storm ${(bareRun.stormMs / 1000).toFixed(2)} s ` +
        `(p99 ${bareRun.connectLatencyMs.p99} ms, ${bareRun.tcp.ListenOverflows ?? '?'} overflows), RSS ${bareRun.rssMB.before} -> ${bareRun.rssMB.connected} MB; ` +
        `storm time ratio ${(gateway.stormMs / bareRun.stormMs).toFixed(2)}x; ` +
        `at most ${concurrency} attempts at once: gateway ${capped(gatewayCapped)}, bare aedes ${capped(bareCapped)}`,
    };
    printReport(report, values.json!);
    return report;
  } finally {
    await killAll();
    await stopChildren();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The process's soft/hard limit on open files, from /proc/<pid>/limits. */
function maxOpenFiles(pid: number): string {
  try {
    const line = readFileSync(`/proc/${pid}/limits`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const [soft, hard] = line!.replace('Max open files', '').trim().split(/\s+/);
    return `${soft}/${hard}`;
  } catch {
    return 'unknown';
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
