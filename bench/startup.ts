/**
 * `npm run bench -- startup`: how long a gateway takes from exec to answering an MQTT CONNECT, on a fresh data
 * folder and on a journal holding `--journal-rows` rows (1,000,000 by default: a site that was offline for a
 * while); the idle RSS once it is up; and how long `fleetgate --version` takes. Goals (issue 16): under 1 s
 * both, `--version` under 0.3 s.
 *
 * "Answering" is a CONNACK to a raw MQTT 3.1.1 CONNECT sent the moment the TCP connect succeeds (retried every
 * 5 ms while the port refuses), so the figure includes everything before the broker takes its first client:
 * module loading, the journal's open and checks, the journal thread, the listeners.
 * Baseline, same run: a bare aedes broker (plain node, bench/servers/bare-aedes.js), exec to CONNACK.
 * `--bin` measures another fleetgate bin (e.g. an older checkout's) with the same harness.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import mqttPacket from 'mqtt-packet';
import { FLEETGATE_BIN, killAll, startFleetgate, portOf } from '../test/support/fleetgate-process.ts';
import { freePort } from '../test/support/free-port.ts';
import { cpuSeconds, runLoader, stopChildren, track } from './lib/children.ts';
import { median, processMemory } from './lib/proc-stats.ts';
import { printReport, type BenchReport } from './lib/report.ts';

const BARE_AEDES = fileURLToPath(new URL('./servers/bare-aedes.js', import.meta.url));
const CONNECT = mqttPacket.generate({
  cmd: 'connect',
  protocolId: 'MQTT',
  protocolVersion: 4,
  clean: true,
  clientId: 'startup-probe',
  keepalive: 0,
});

interface StartRun {
  /** exec -> CONNACK, ms */
  readyMs: number;
  /** CPU seconds the process used until then */
  cpuSeconds: number;
  /** RSS (MB) `settleMs` after the CONNACK, idle */
  idleRssMB: number;
}

/** Sends CONNECT to 127.0.0.1:port as soon as it accepts; resolves at the CONNACK. */
async function firstConnack(port: number, child: ChildProcess, deadlineMs = 60_000): Promise<void> {
  const deadline = performance.now() + deadlineMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the process exited (${child.exitCode}) before answering`);
    const answered = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => socket.write(CONNECT));
      socket.once('data', (data) => {
        socket.destroy();
        resolve(data[0] === 0x20);
      });
      socket.once('error', () => resolve(false));
    });
    if (answered) return;
    if (performance.now() > deadline) throw new Error(`no CONNACK on port ${port} within ${deadlineMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Execs `node ...args` (listening on `port`), waits for the first CONNACK, samples its idle RSS, stops it. */
async function timeStart(args: string[], port: number, settleMs: number, env: NodeJS.ProcessEnv = {}): Promise<StartRun> {
  const started = performance.now();
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env } });
  const stop = track(child);
  try {
    await firstConnack(port, child);
    const readyMs = performance.now() - started;
    const cpu = cpuSeconds(child.pid!);
    await new Promise((resolve) => setTimeout(resolve, settleMs));
    const idleRssMB = processMemory(child.pid!)?.rssMB ?? NaN;
    return { readyMs: Math.round(readyMs), cpuSeconds: cpu, idleRssMB };
  } finally {
    await stop();
  }
}

const gatewayArgs = (bin: string, dir: string, port: number) => [
  bin,
  'gateway',
  '--gateway-id',
  'bench-startup',
  '--allow-anonymous',
  '--mqtt',
  `127.0.0.1:${port}`,
  '--admin',
  '127.0.0.1:0',
  '--device-grpc',
  'off',
  '--upstream',
  '127.0.0.1:1',
  '--data',
  dir,
];

function summarize(runs: StartRun[]) {
  return {
    readyMsMedian: median(runs.map((r) => r.readyMs)),
    readyMs: runs.map((r) => r.readyMs),
    cpuSecondsMedian: +median(runs.map((r) => r.cpuSeconds)).toFixed(2),
    idleRssMBMedian: median(runs.map((r) => r.idleRssMB)),
  };
}

export async function startup(argv: string[]): Promise<BenchReport> {
  const { values } = parseArgs({
    args: argv,
    options: {
      bin: { type: 'string', default: FLEETGATE_BIN },
      runs: { type: 'string', default: '5' },
      'journal-rows': { type: 'string', default: '1000000' },
      'settle-ms': { type: 'string', default: '3000' },
      json: { type: 'boolean', default: false },
    },
  });
  const bin = values.bin!;
  const runs = Number(values.runs);
  const rows = Number(values['journal-rows']);
  const settleMs = Number(values['settle-ms']);
  const dir = mkdtempSync(join(tmpdir(), 'fleetgate-bench-startup-'));
  try {
    const version: number[] = [];
    for (let i = 0; i < runs * 2; i++) {
      const started = performance.now();
      const child = spawn(process.execPath, [bin, '--version'], { stdio: 'ignore' });
      const [code] = await once(child, 'exit');
      if (code !== 0) throw new Error(`${bin} --version exited ${code}`);
      version.push(Math.round(performance.now() - started));
    }

    const bare: StartRun[] = [];
    for (let i = 0; i < runs; i++) {
      const port = await freePort();
      bare.push(await timeStart([BARE_AEDES], port, settleMs, { PORT: String(port) }));
    }

    const fresh: StartRun[] = [];
    for (let i = 0; i < runs; i++) {
      const port = await freePort();
      fresh.push(await timeStart(gatewayArgs(bin, join(dir, `fresh-${i}`), port), port, settleMs));
    }

    // A journal of `rows` rows: a gateway whose upstream is unreachable takes them from 100 connections (QoS 1),
    // then stops with SIGTERM; every start below opens that journal.
    const journalDir = join(dir, 'journal');
    let journalRows = 0;
    if (rows > 0) {
      const filling = await startFleetgate('gateway', gatewayArgs(bin, journalDir, 0).slice(1), 'gateway ready', {}, bin);
      const connections = 100;
      const result = await runLoader({
        host: '127.0.0.1',
        port: portOf(filling.ready.mqtt),
        connections,
        inflight: Math.ceil(rows / connections),
        payloadBytes: 100,
        warmupSeconds: 0,
        seconds: 600,
        clientPrefix: 'fill-',
        once: true,
      });
      journalRows = result.totalAcked;
      await filling.process.stop();
    }
    const withJournal: StartRun[] = [];
    for (let i = 0; i < (rows > 0 ? runs : 0); i++) {
      const port = await freePort();
      withJournal.push(await timeStart(gatewayArgs(bin, journalDir, port), port, settleMs));
    }

    const figures = {
      bin,
      versionMsMedian: median(version),
      fresh: summarize(fresh),
      journal: rows > 0 ? { rows: journalRows, ...summarize(withJournal) } : undefined,
      bareAedes: summarize(bare),
      goals: { readyMs: 1000, versionMs: 300 },
    };
    const report: BenchReport = {
      name: 'startup',
      settings: { ...values },
      figures,
      summary:
        `exec -> first CONNACK: gateway fresh ${figures.fresh.readyMsMedian} ms (CPU ${figures.fresh.cpuSecondsMedian} s, idle RSS ${figures.fresh.idleRssMBMedian} MB)` +
        (figures.journal
          ? `, with a ${journalRows.toLocaleString('en')}-row journal ${figures.journal.readyMsMedian} ms (idle RSS ${figures.journal.idleRssMBMedian} MB)`
          : '') +
        `; bare aedes ${figures.bareAedes.readyMsMedian} ms (CPU ${figures.bareAedes.cpuSecondsMedian} s, RSS ${figures.bareAedes.idleRssMBMedian} MB); ` +
        `fleetgate --version ${figures.versionMsMedian} ms; medians of ${runs} (goals: < 1000 ms, --version < 300 ms)`,
    };
    printReport(report, values.json!);
    return report;
  } finally {
    await killAll();
    await stopChildren();
    rmSync(dir, { recursive: true, force: true });
  }
}
