/**
 * `fleetgate sim`: a simulated fleet against a gateway (the one at --gateway, or one it starts itself with
 * --managed or a scenario's `stack:`), then the verification of what arrived. Exit code 0 when every acked
 * message arrived once and in order, 1 when not, 2 for a usage or configuration error.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { Command, InvalidArgumentError, Option } from 'commander';
import ms from 'ms';
import { ConfigError } from '@fleetgate/core';
import { loadSigningKey } from '@fleetgate/common';
import { payloadMaker } from './payload.ts';
import { loadScenario, payloadSpec, type PhaseSpec, type Scenario } from './scenario.ts';
import { renderHtmlReport } from './report/html.ts';
import type { SimResult, TimelineSample } from './result.ts';
import { newIdPrefix, runSimulation, type RunHooks, type SimSettings } from './run.ts';

interface SimFlags {
  scenario?: string;
  devices: number;
  protocol: 'mqtt' | 'sdk' | 'mix';
  rate: number;
  payload: number;
  payloadTemplate?: string;
  qos: '0' | '1';
  mqttVersion: '3.1.1' | '5' | 'mixed';
  window: number;
  duration: number;
  messages?: number;
  churn: number;
  key?: string;
  tokenTtl: number;
  gateway: string;
  deviceGrpc: string;
  gatewayAdmin?: string;
  cloudAdmin: string;
  managed: boolean;
  data?: string;
  gatewayArg: string[];
  idPrefix?: string;
  settle: number;
  json?: string;
  report?: string;
  quiet: boolean;
}

const positive = (what: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`expected ${what} above 0`);
  return n;
};
const whole = (min: number) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected a whole number >= ${min}`);
  return n;
};
const durationMs = (value: string) => {
  const n = /^\d+(\.\d+)?$/.test(value) ? Number(value) * 1000 : ms(value as ms.StringValue);
  if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError('expected a duration such as 30s, 5m or a number of seconds');
  return n;
};

export function simCommand(bin: string): Command {
  return new Command('sim')
    .description(
      'run a simulated device fleet against a gateway and verify that every acked message reached the cloud-stub once and in order',
    )
    .option(
      '--scenario <file>',
      'a scenario (YAML: phases and faults; see simulators/scenarios/); flags given override its fleet settings',
    )
    .addOption(new Option('--devices <n>', 'devices in the fleet').argParser(whole(1)).default(10))
    .addOption(new Option('--protocol <p>', 'how devices talk to the gateway').choices(['mqtt', 'sdk', 'mix']).default('mqtt'))
    .addOption(new Option('--rate <n>', 'readings per second per device').argParser(positive('a rate')).default(1))
    .addOption(
      new Option('--payload <bytes>', 'payload size (JSON with the message number, its time and padding)')
        .argParser(whole(1))
        .default(100),
    )
    .option(
      '--payload-template <json|@file>',
      'payload template: a JSON object whose "$..." strings are generated ($seq $now $iso $device $uuid $bool $int:MIN:MAX $float:MIN:MAX[:D] $walk:MIN:MAX $pick:A|B)',
    )
    .addOption(new Option('--qos <n>', 'MQTT QoS of the publishes (SDK sends are always acked)').choices(['0', '1']).default('1'))
    .addOption(
      new Option('--mqtt-version <v>', 'MQTT version of the MQTT devices (mixed: every other one speaks MQTT 5)')
        .choices(['3.1.1', '5', 'mixed'])
        .default('3.1.1'),
    )
    .addOption(new Option('--window <n>', 'messages a device keeps unacknowledged at most').argParser(whole(1)).default(20))
    .addOption(new Option('--duration <d>', 'how long to send (e.g. 30s, 5m)').argParser(durationMs).default(30_000, '30s'))
    .addOption(new Option('--messages <n>', 'messages per device, instead of --duration').argParser(whole(1)))
    .addOption(
      new Option('--churn [perMinute]', 'random disconnects: drops per device per minute (1 if no number)')
        .argParser(positive('a rate'))
        .preset(1)
        .default(0),
    )
    .option('--key <file>', 'the fleet signing key (fleet.key or fleet.secret): the simulator mints each device a token')
    .addOption(new Option('--token-ttl <d>', 'lifetime of the minted tokens').argParser(durationMs).default(3_600_000, '1h'))
    .option('--gateway <url>', "the gateway's MQTT listener", 'mqtt://127.0.0.1:1883')
    .option('--device-grpc <host:port>', "the gateway's device link, for SDK devices", '127.0.0.1:50052')
    .option('--gateway-admin <url>', "the gateway's admin listener, for the journal backlog (off: none)", 'http://127.0.0.1:9180')
    .option('--cloud-admin <url>', "the cloud-stub's admin listener (what arrived)", 'http://127.0.0.1:9181')
    .option(
      '--managed',
      'start a cloud-stub and a gateway as child processes (needed for kill-gateway and restart-cloud faults)',
      false,
    )
    .option('--data <dir>', 'data folder of the managed stack (default: a temporary folder, removed afterwards)')
    .addOption(
      new Option('--gateway-arg <flag>', 'an extra flag for the managed gateway (repeat it)')
        .argParser((v: string, all: string[]) => [...all, v])
        .default([]),
    )
    .option('--id-prefix <p>', 'device ids are <prefix><n> (default: sim-<random>-, so that runs stay apart)')
    .addOption(
      new Option('--settle <d>', 'after sending, how long to wait at most for acks and for the cloud')
        .argParser(durationMs)
        .default(60_000, '60s'),
    )
    .option('--json <file>', 'write the whole result as JSON ("-": standard output, and no other output there)')
    .option('--report <file>', 'write a self-contained HTML report (charts over time and the verification table)')
    .option('--quiet', 'no progress output', false)
    .action(async (flags: SimFlags, command: Command) => {
      let settings: SimSettings;
      let tempData: string | undefined;
      try {
        const scenario = flags.scenario ? loadScenario(flags.scenario) : undefined;
        const given = (name: string) => command.getOptionValueSource(name) === 'cli';
        const managed = flags.managed || scenario?.stack !== undefined;
        if (managed && !flags.data) tempData = mkdtempSync(join(tmpdir(), 'fleetgate-sim-'));
        settings = await buildSettings(flags, scenario, given, managed ? resolve(flags.data ?? tempData!) : undefined, bin);
      } catch (err: unknown) {
        if (!(err instanceof ConfigError)) throw err;
        process.stderr.write(`fleetgate sim: ${err.message}\n`);
        process.exitCode = 2;
        return;
      }
      const out = flags.json === '-' ? process.stderr : process.stdout;
      const progress = flags.quiet ? undefined : new Progress(out);
      let result: SimResult;
      try {
        result = await runSimulation(settings, progress?.hooks ?? {});
      } finally {
        progress?.stop();
        if (tempData) rmSync(tempData, { recursive: true, force: true });
      }
      out.write(summary(result));
      if (flags.json === '-') process.stdout.write(JSON.stringify(result) + '\n');
      else if (flags.json) writeFileSync(flags.json, JSON.stringify(result, null, 2) + '\n');
      if (flags.report) {
        writeFileSync(flags.report, renderHtmlReport(result));
        out.write(`report: ${resolve(flags.report)}\n`);
      }
      process.exitCode = result.verification.ok ? 0 : 1;
    });
}

async function buildSettings(
  flags: SimFlags,
  scenario: Scenario | undefined,
  given: (name: string) => boolean,
  dataDir: string | undefined,
  bin: string,
): Promise<SimSettings> {
  const pick = <T>(name: string, flag: T, fromScenario: T | undefined): T =>
    given(name) || fromScenario === undefined ? flag : fromScenario;
  let payload = scenario?.payload && !given('payload') ? scenario.payload : payloadSpec(flags.payload, '--payload');
  if (flags.payloadTemplate) {
    const text = flags.payloadTemplate.startsWith('@')
      ? readFileSync(flags.payloadTemplate.slice(1), 'utf8')
      : flags.payloadTemplate;
    try {
      payload = { template: JSON.parse(text) as unknown };
    } catch (err: unknown) {
      throw new ConfigError('--payload-template', `not valid JSON: ${(err as Error).message}`);
    }
  }
  const rate = pick('rate', flags.rate, scenario?.rate);
  const phases: PhaseSpec[] = scenario?.phases.map((p) => ({
    ...p,
    rate: p.rate ?? (p === scenario.phases[0] ? { from: rate, to: rate } : undefined),
  })) ?? [
    {
      name: flags.messages === undefined ? 'steady' : 'messages',
      durationMs: flags.messages === undefined ? flags.duration : 1,
      rate: { from: rate, to: rate },
      faults: [],
    },
  ];
  const tokenKey = flags.key
    ? await loadSigningKey(
        flags.key.endsWith('.secret') ? { secretFile: flags.key, field: '--key' } : { keyFile: flags.key, field: '--key' },
      )
    : undefined;
  if (scenario?.phases.some((p) => p.faults.some((f) => f.kind === 'expire-tokens')) && !tokenKey && !dataDir) {
    throw new ConfigError('--key', 'the scenario expires tokens: give the fleet signing key, or let the simulator run the stack');
  }
  const settings: SimSettings = {
    name: scenario?.name ?? (flags.scenario ? flags.scenario : 'fleetgate sim'),
    devices: pick('devices', flags.devices, scenario?.devices),
    protocol: pick('protocol', flags.protocol, scenario?.protocol),
    qos: pick('qos', Number(flags.qos) as 0 | 1, scenario?.qos),
    mqttVersion: flags.mqttVersion,
    window: pick('window', flags.window, scenario?.window),
    payload,
    churn: pick('churn', flags.churn, scenario?.churn),
    phases,
    idPrefix: flags.idPrefix ?? newIdPrefix(),
    tokenTtlSeconds: Math.max(1, Math.round(flags.tokenTtl / 1000)),
    settleMs: flags.settle,
    sampleMs: 1000,
  };
  if (flags.messages !== undefined) settings.messagesPerDevice = flags.messages;
  if (tokenKey) settings.signingKey = tokenKey;
  if (dataDir) {
    settings.stack = {
      bin,
      dataDir,
      gatewayId: 'gw-sim',
      gatewayArgs: [...(scenario?.stack?.gatewayArgs ?? []), ...flags.gatewayArg],
      cloudArgs: scenario?.stack?.cloudArgs ?? [],
    };
  } else {
    settings.targets = {
      mqttUrl: flags.gateway,
      deviceGrpc: flags.deviceGrpc,
      cloudAdmin: flags.cloudAdmin,
      ...(flags.gatewayAdmin && flags.gatewayAdmin !== 'off' ? { gatewayAdmin: flags.gatewayAdmin } : {}),
    };
  }
  payloadMaker(payload, flags.payloadTemplate ? '--payload-template' : '--payload'); // checks it before anything starts
  return settings;
}

/** A progress bar and a live line on a terminal; a plain line every 5 s otherwise. */
class Progress {
  private readonly multibar: cliProgress.MultiBar | undefined;
  private readonly bar: cliProgress.SingleBar | undefined;
  private samples = 0;
  readonly hooks: RunHooks;

  constructor(private readonly out: NodeJS.WriteStream) {
    if (out.isTTY) {
      this.multibar = new cliProgress.MultiBar(
        {
          format:
            '{bar} {percentage}% {phase} | sent {sent} ({sentRate}/s) | acked {acked} | cloud {committed} ({committedRate}/s) | backlog {backlog} | online {connected}',
          hideCursor: true,
          stream: out,
          clearOnComplete: false,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar = this.multibar.create(1000, 0);
    }
    this.hooks = {
      onEvent: (message) => this.log(message),
      onSample: (sample, run) => this.onSample(sample, run.phase, run.elapsedMs, run.totalMs),
    };
  }

  stop(): void {
    this.multibar?.stop();
  }

  private log(message: string): void {
    const line = `${new Date().toISOString().slice(11, 19)} ${message}\n`;
    if (this.multibar) this.multibar.log(line);
    else this.out.write(line);
  }

  private onSample(s: TimelineSample, phase: string, elapsedMs: number, totalMs: number): void {
    const fields = {
      phase,
      sent: s.sent,
      sentRate: s.sentRate,
      acked: s.acked,
      committed: s.committed ?? '?',
      committedRate: s.committedRate ?? '?',
      backlog: s.backlog ?? '?',
      connected: s.connected,
    };
    if (this.bar) {
      this.bar.update(Math.min(1000, Math.round((elapsedMs / Math.max(1, totalMs)) * 1000)), fields);
      return;
    }
    if (this.samples++ % 5 !== 0) return;
    this.log(
      `${phase} t=${s.t.toFixed(0)}s sent ${s.sent} (${s.sentRate}/s) acked ${s.acked} cloud ${fields.committed} (${fields.committedRate}/s) backlog ${fields.backlog} online ${s.connected}`,
    );
  }
}

export function summary(result: SimResult): string {
  const v = result.verification;
  const l = result.latency;
  const lines = [
    '',
    `${result.name}: ${v.ok ? 'PASS' : 'FAIL'} (${((result.endedAt - result.startedAt) / 1000).toFixed(1)} s, ${v.devices} devices)`,
    `  sent ${v.sent}, acked ${v.acked}, arrived ${v.arrived}`,
    `  lost (acked, never arrived) ${v.lost}   duplicates ${v.duplicates}   out of order ${v.outOfOrder}   redelivered (QoS 1, in flight at a drop) ${v.redelivered}`,
    `  unacked and missing (not a failure) ${v.unackedMissing}   gaps reported by the gateway: ${v.gaps.ranges} ranges, ${v.gaps.records} records${
      Object.keys(v.gaps.byReason).length
        ? ` (${Object.entries(v.gaps.byReason)
            .map(([r, n]) => `${r} ${n}`)
            .join(', ')})`
        : ''
    }`,
    `  latency device -> cloud commit (ms): p50 ${l.p50}  p90 ${l.p90}  p99 ${l.p99}  p99.9 ${l.p999}  max ${l.max}  (${l.count} records)`,
  ];
  if (result.faults.length) lines.push(`  faults: ${result.faults.map((f) => `${f.kind} at ${f.t.toFixed(1)} s`).join(', ')}`);
  for (const [kind, examples] of Object.entries(v.examples)) if (examples.length) lines.push(`  ${kind}: ${examples.join(' ')}`);
  return lines.join('\n') + '\n';
}
