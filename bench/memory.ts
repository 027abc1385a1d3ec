/**
 * `npm run bench -- memory`: the gateway's resident memory with 1,000 MQTT devices sending 5,000 msgs/s in all
 * (5 msgs/s each, paced, QoS 1, 100-byte payloads) for 30 s. Goal: <= 80 MB.
 * The process's VmRSS (and VmHWM, the kernel's peak) is read from /proc/<pid>/status every 500 ms; it covers
 * the gateway's worker threads (journal, pipeline), which share its address space. Figures: idle RSS (started,
 * no device), RSS with the 1,000 devices connected and silent, steady state under load (the median of the last
 * 2/3 of the measured window), the peak, and the RSS slope over the window (growth under a steady load).
 * Baseline, same run: a bare aedes broker, the same load and the same sampling.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { killAll } from '../test/support/fleetgate-process.ts';
import { runLoader, startServer, stopChildren } from './lib/children.ts';
import { startStack } from './lib/fleetgate-stack.ts';
import type { LoadResult, LoadSettings } from './lib/mqtt-load.ts';
import { median, MemorySampler, rssSlopeMBPerMin, type MemorySample } from './lib/proc-stats.ts';
import { printReport, type BenchReport } from './lib/report.ts';

const GOAL_MB = 80;

interface MemoryRun {
  idleMB: number;
  connectedIdleMB: number;
  steadyMB: number;
  /** The highest RSS sampled under load, and the kernel's peak (VmHWM) over the process's life. */
  maxUnderLoadMB: number;
  peakMB: number;
  slopeMBPerMin: number;
  afterCloseMB: number;
  threads: number;
  load: Pick<LoadResult, 'sentRate' | 'rate' | 'latencyMs' | 'unanswered' | 'dropped' | 'totalAcked'> & { connectMs: number };
  samples: MemorySample[];
}

export async function memory(argv: string[]): Promise<BenchReport> {
  const { values } = parseArgs({
    args: argv,
    options: {
      devices: { type: 'string', default: '1000' },
      rate: { type: 'string', default: '5000' },
      inflight: { type: 'string', default: '20' },
      payload: { type: 'string', default: '100' },
      seconds: { type: 'string', default: '30' },
      warmup: { type: 'string', default: '2' },
      /** Seconds of each idle phase: before the devices connect, and connected before they publish. */
      idle: { type: 'string', default: '4' },
      'interval-ms': { type: 'string', default: '500' },
      durability: { type: 'string', default: 'power' },
      json: { type: 'boolean', default: false },
      samples: { type: 'boolean', default: false },
      'gateway-arg': { type: 'string', multiple: true, default: [] },
      /** NODE_OPTIONS of the gateway process only (--gateway-node-options=--max-semi-space-size=1, as the systemd unit). */
      'gateway-node-options': { type: 'string', default: '' },
    },
  });
  const idleSeconds = Number(values.idle);
  const load = (port: number, clientPrefix: string): LoadSettings => ({
    host: '127.0.0.1',
    port,
    clientPrefix,
    connections: Number(values.devices),
    inflight: Number(values.inflight),
    payloadBytes: Number(values.payload),
    warmupSeconds: Number(values.warmup),
    seconds: Number(values.seconds),
    rate: Number(values.rate),
    idleSeconds,
  });
  const measure = async (pid: number, settings: LoadSettings): Promise<MemoryRun> => {
    const sampler = new MemorySampler(pid, Number(values['interval-ms']));
    try {
      sampler.enter('idle');
      await sleep(idleSeconds * 1000);
      sampler.enter('connecting');
      const phases: Record<string, string> = { connected: 'connected', load: 'warmup', measuring: 'steady', measured: 'drain' };
      const result = await runLoader(settings, (event) => {
        if (phases[event]) sampler.enter(phases[event]);
      });
      sampler.enter('closed');
      await sleep(1000);
      sampler.sample();
      const steady = sampler.inPhase('steady');
      const lastTwoThirds = steady.slice(Math.floor(steady.length / 3));
      return {
        idleMB: median(sampler.inPhase('idle').map((s) => s.rssMB)),
        connectedIdleMB: median(sampler.inPhase('connected').map((s) => s.rssMB)),
        steadyMB: median(lastTwoThirds.map((s) => s.rssMB)),
        maxUnderLoadMB: Math.max(...steady.map((s) => s.rssMB)),
        peakMB: sampler.peakMB(),
        slopeMBPerMin: rssSlopeMBPerMin(steady),
        afterCloseMB: sampler.samples.at(-1)!.rssMB,
        threads: Math.max(...sampler.samples.map((s) => s.threads)),
        load: {
          sentRate: result.sentRate,
          rate: result.rate,
          latencyMs: result.latencyMs,
          unanswered: result.unanswered,
          dropped: result.dropped,
          totalAcked: result.totalAcked,
          connectMs: result.connect!.ms,
        },
        samples: sampler.samples,
      };
    } finally {
      sampler.stop();
    }
  };

  const dir = mkdtempSync(join(tmpdir(), 'fleetgate-bench-memory-'));
  try {
    const bare = await startServer(new URL('./servers/bare-aedes.js', import.meta.url));
    let bareRun: MemoryRun;
    try {
      bareRun = await measure(bare.pid, load(bare.port, 'bare-'));
    } finally {
      await bare.stop();
    }

    const stack = await startStack(join(dir, 'stack'), {
      durability: values.durability!,
      gatewayArgs: values['gateway-arg']!,
      ...(values['gateway-node-options'] ? { gatewayEnv: { NODE_OPTIONS: values['gateway-node-options'] } } : {}),
    });
    let gatewayRun: MemoryRun;
    let committed: number;
    try {
      gatewayRun = await measure(stack.gateway.process.pid, load(stack.mqttPort, 'mem-'));
      committed = await stack.waitForCloud(gatewayRun.load.totalAcked, 60_000);
    } finally {
      await stack.stop();
    }

    const { samples: gatewaySamples, ...gateway } = gatewayRun;
    const { samples: bareSamples, ...bareAedes } = bareRun;
    const goalMet = gateway.steadyMB <= GOAL_MB && gateway.maxUnderLoadMB <= GOAL_MB;
    const report: BenchReport = {
      name: 'memory',
      settings: { ...values },
      figures: {
        gateway: { ...gateway, committedAtCloud: committed, everyPubackedMessageArrived: committed >= gateway.load.totalAcked },
        bareAedes,
        steadyRatio: +(gateway.steadyMB / bareAedes.steadyMB).toFixed(2),
        goalMB: GOAL_MB,
        goalMet,
        ...(values.samples ? { samples: { gateway: gatewaySamples, bareAedes: bareSamples } } : {}),
      },
      summary:
        `${values.devices} devices, ${values.rate} msgs/s for ${values.seconds} s: gateway RSS idle ${gateway.idleMB} MB, ` +
        `${values.devices} connected idle ${gateway.connectedIdleMB} MB, steady ${gateway.steadyMB} MB (max under load ${gateway.maxUnderLoadMB}, ` +
        `peak/HWM ${gateway.peakMB} MB, slope ${gateway.slopeMBPerMin} MB/min) - goal <= ${GOAL_MB} MB ${goalMet ? 'met' : 'NOT met'}; ` +
        `bare aedes idle ${bareAedes.idleMB}, connected ${bareAedes.connectedIdleMB}, steady ${bareAedes.steadyMB}, peak ${bareAedes.peakMB} MB; ` +
        `steady ratio ${(gateway.steadyMB / bareAedes.steadyMB).toFixed(2)}x; achieved ${gateway.load.sentRate} sent/s, ${gateway.load.rate} PUBACKed/s ` +
        `(bare ${bareAedes.load.rate}/s); durability=${values.durability}`,
    };
    printReport(report, values.json!);
    return report;
  } finally {
    await killAll();
    await stopChildren();
    rmSync(dir, { recursive: true, force: true });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
