/**
 * One simulator run: start the fleet (and the stack, when managed), drive the phases and faults, sample the
 * counters, let everything settle, then ask the cloud-stub what arrived and verify it.
 */
import { randomBytes } from 'node:crypto';
import type { TokenKey } from '@fleetgate/common';
import { ANONYMOUS, FleetTokens, type DeviceCredentials } from './credentials.ts';
import { MqttSimDevice, SdkSimDevice, type DeviceSettings, type SimDevice } from './devices.ts';
import { Fleet } from './fleet.ts';
import { payloadMaker, type PayloadSpec } from './payload.ts';
import type { FaultMarker, PhaseMarker, SimResult, TimelineSample } from './result.ts';
import type { FaultSpec, PhaseSpec, Protocol, Ramp } from './scenario.ts';
import { ManagedStack, type StackSettings } from './stack.ts';
import { fetchGaps, fetchRecords, Verifier } from './verify.ts';

export interface Targets {
  /** mqtt://host:port of the gateway's MQTT listener. */
  mqttUrl: string;
  /** host:port of the gateway's device link (SDK devices). */
  deviceGrpc: string;
  /** http://host:port of the gateway's admin listener, for the backlog; optional. */
  gatewayAdmin?: string;
  /** http://host:port of the cloud-stub's admin listener: what arrived. */
  cloudAdmin: string;
}

export interface SimSettings {
  name: string;
  devices: number;
  protocol: Protocol;
  qos: 0 | 1;
  /** What the MQTT devices speak; mixed: every other device MQTT 5, the rest 3.1.1. */
  mqttVersion: '3.1.1' | '5' | 'mixed';
  /** Messages each device keeps unacknowledged at most. */
  window: number;
  payload: PayloadSpec;
  /** Connection drops per device per minute (0: none). */
  churn: number;
  /** Readings per device, then the device stops (the run ends when all were sent); undefined: by the phases' durations. */
  messagesPerDevice?: number;
  phases: PhaseSpec[];
  /** Device ids are `${idPrefix}${i}`: a fresh prefix per run keeps runs apart at the same cloud-stub. */
  idPrefix: string;
  /** Either where the stack is, or how to start one. */
  targets?: Targets;
  stack?: StackSettings;
  /** Signs the fleet's device tokens (a managed stack brings its own); none: anonymous devices. */
  signingKey?: TokenKey;
  tokenTtlSeconds: number;
  /** After the last phase, how long to wait at most for what was sent to be acked and to reach the cloud. */
  settleMs: number;
  sampleMs: number;
}

export interface RunHooks {
  onSample?(
    sample: TimelineSample,
    run: { phase: string; elapsedMs: number; totalMs: number; buffered: number; inFlight: number },
  ): void;
  onEvent?(message: string): void;
}

export function newIdPrefix(): string {
  return `sim-${randomBytes(3).toString('hex')}-`;
}

export async function runSimulation(settings: SimSettings, hooks: RunHooks = {}): Promise<SimResult> {
  const event = (message: string) => hooks.onEvent?.(message);
  const stack = settings.stack ? await ManagedStack.start(settings.stack) : undefined;
  try {
    const targets: Targets = stack
      ? { mqttUrl: stack.mqttUrl, deviceGrpc: stack.deviceGrpc, gatewayAdmin: stack.gatewayAdmin, cloudAdmin: stack.cloudAdmin }
      : settings.targets!;
    if (stack)
      event(
        `started a cloud-stub (pid ${stack.cloud!.pid}) and a gateway (pid ${stack.gateway!.pid}); data in ${settings.stack!.dataDir}`,
      );
    const key = stack?.signingKey ?? settings.signingKey;
    const tokens = key ? new FleetTokens(key, settings.tokenTtlSeconds) : undefined;
    const credentials: DeviceCredentials = tokens ?? ANONYMOUS;
    const errors = new Map<string, number>();
    const deviceSettings: DeviceSettings = {
      qos: settings.qos,
      window: settings.window,
      makePayload: payloadMaker(settings.payload),
      credentials,
      onError: (_deviceId, err) => {
        const count = (errors.get(err.message) ?? 0) + 1;
        errors.set(err.message, count);
        if (count === 1) event(`device error: ${err.message}`);
      },
    };
    let mqttDevices = 0;
    const devices: SimDevice[] = Array.from({ length: settings.devices }, (_, i) => {
      const id = `${settings.idPrefix}${i}`;
      const sdk = settings.protocol === 'sdk' || (settings.protocol === 'mix' && i % 2 === 1);
      if (sdk) return new SdkSimDevice(id, targets.deviceGrpc, deviceSettings);
      const v5 = settings.mqttVersion === '5' || (settings.mqttVersion === 'mixed' && mqttDevices++ % 2 === 1);
      return new MqttSimDevice(id, targets.mqttUrl, deviceSettings, v5 ? 5 : 4);
    });
    const fleet = new Fleet(devices, settings.messagesPerDevice);
    const runner = new PhaseRunner(settings, fleet, targets, stack, tokens, event, hooks);
    const timeline = await runner.run();
    event('verifying what arrived at the cloud-stub');
    const verifier = new Verifier(
      devices.map((d) => d.ledger),
      runner.startedAt,
    );
    for await (const record of fetchRecords(targets.cloudAdmin, settings.idPrefix)) verifier.add(record);
    const outcome = verifier.finish(await fetchGaps(targets.cloudAdmin, verifier.gatewayIds));
    if (outcome.foreign > 0) event(`${outcome.foreign} records under ${settings.idPrefix} were not this run's`);
    return {
      name: settings.name,
      startedAt: runner.startedAt,
      endedAt: Date.now(),
      settings: describe(settings),
      sampleMs: settings.sampleMs,
      timeline,
      latencyOverTime: outcome.latencyOverTime,
      phases: runner.phases,
      faults: runner.faults,
      latency: outcome.latency,
      verification: outcome.verification,
    };
  } finally {
    if (stack) {
      event('stopping the stack');
      await stack.stop();
    }
  }
}

class PhaseRunner {
  startedAt = 0;
  readonly phases: PhaseMarker[] = [];
  readonly faults: FaultMarker[] = [];
  private readonly timeline: TimelineSample[] = [];
  private readonly pendingFaults: Promise<void>[] = [];
  private last = { at: 0, sent: 0, acked: 0, committed: null as number | null };
  private phaseName = '';
  private totalMs = 0;

  constructor(
    private readonly settings: SimSettings,
    private readonly fleet: Fleet,
    private readonly targets: Targets,
    private readonly stack: ManagedStack | undefined,
    private readonly tokens: FleetTokens | undefined,
    private readonly event: (message: string) => void,
    private readonly hooks: RunHooks,
  ) {}

  async run(): Promise<TimelineSample[]> {
    const { settings, fleet } = this;
    this.startedAt = Date.now();
    this.last.at = this.startedAt;
    this.totalMs = settings.phases.reduce((total, p) => total + p.durationMs, 0);
    let offset = 0;
    for (const phase of settings.phases) {
      for (const fault of phase.faults) {
        if (fault.kind === 'expire-tokens') this.tokens?.expireAllAt(this.startedAt + offset + fault.atMs);
      }
      offset += phase.durationMs;
    }
    const sampler = setInterval(() => void this.sample(), settings.sampleMs);
    let devices: Ramp = { from: settings.devices, to: settings.devices };
    let rate: Ramp = { from: 0, to: 0 };
    try {
      let phaseStart = this.startedAt;
      for (const phase of settings.phases) {
        devices = phase.devices ?? { from: devices.to, to: devices.to };
        rate = phase.rate ?? { from: rate.to, to: rate.to };
        this.phaseName = phase.name;
        this.event(`phase ${phase.name}: ${phase.durationMs / 1000} s, devices ${show(devices)}, rate ${show(rate)}/s each`);
        await this.runPhase(phase, phaseStart, devices, rate);
        this.phases.push({
          name: phase.name,
          from: (phaseStart - this.startedAt) / 1000,
          to: (Date.now() - this.startedAt) / 1000,
        });
        phaseStart = Date.now();
        if (settings.messagesPerDevice !== undefined && fleet.allTaken) break;
      }
      if (settings.messagesPerDevice !== undefined && !fleet.allTaken) {
        // --messages: the last phase goes on until every device took its readings.
        this.event('sending the rest of the --messages');
        const started = Date.now();
        while (!fleet.allTaken)
          await this.step(started, { from: devices.to, to: devices.to }, { from: rate.to, to: rate.to }, 1, 0);
      }
      this.phaseName = 'settle';
      await Promise.all(this.pendingFaults);
      await this.settle();
    } finally {
      clearInterval(sampler);
    }
    await this.sample();
    await this.fleet.close();
    return this.timeline;
  }

  private async runPhase(phase: PhaseSpec, startedAt: number, devices: Ramp, rate: Ramp): Promise<void> {
    const faults = [...phase.faults].sort((a, b) => a.atMs - b.atMs);
    const churn = phase.churn ?? this.settings.churn;
    for (;;) {
      const elapsed = Date.now() - startedAt;
      while (faults.length > 0 && faults[0]!.atMs <= elapsed) this.pendingFaults.push(this.inject(faults.shift()!));
      if (elapsed >= phase.durationMs) return;
      if (this.settings.messagesPerDevice !== undefined && this.fleet.allTaken) return;
      await this.step(startedAt, devices, rate, phase.durationMs, churn);
    }
  }

  private async step(startedAt: number, devices: Ramp, rate: Ramp, durationMs: number, churn: number): Promise<void> {
    const now = Date.now();
    const f = Math.min(1, (now - startedAt) / durationMs);
    this.fleet.active = Math.round(devices.from + (devices.to - devices.from) * f);
    this.fleet.rate = rate.from + (rate.to - rate.from) * f;
    this.fleet.tick(now);
    if (churn > 0) this.fleet.churn(churn, TICK_MS);
    await delay(TICK_MS);
  }

  private async inject(fault: FaultSpec): Promise<void> {
    const t = (Date.now() - this.startedAt) / 1000;
    const mark = (detail: string) => {
      this.faults.push({ t, kind: fault.kind, detail });
      this.event(`fault at ${t.toFixed(1)} s: ${fault.kind}, ${detail}`);
    };
    switch (fault.kind) {
      case 'kill-gateway': {
        mark(`SIGKILL the gateway (pid ${this.stack!.gateway!.pid}), back after ${fault.downMs / 1000} s`);
        await this.stack!.killGateway(fault.downMs);
        return;
      }
      case 'restart-cloud': {
        mark(`stop the cloud-stub (pid ${this.stack!.cloud!.pid}), back after ${fault.downMs / 1000} s`);
        await this.stack!.restartCloud(fault.downMs);
        return;
      }
      case 'expire-tokens':
        mark(
          this.tokens
            ? 'every device token expires now: sessions end, devices come back with fresh tokens'
            : 'no tokens to expire (anonymous devices)',
        );
        return;
      case 'reconnect-storm':
        mark(`all ${this.fleet.active} devices drop their connections at once`);
        this.fleet.storm();
        return;
    }
  }

  /** Until every reading was sent and acked, and the cloud holds as many of the fleet's records as were acked. */
  private async settle(): Promise<void> {
    this.fleet.rate = 0;
    const deadline = Date.now() + this.settings.settleMs;
    while ((this.fleet.buffered > 0 || this.fleet.inFlight > 0) && Date.now() < deadline) {
      this.fleet.tick(Date.now());
      await delay(TICK_MS);
    }
    if (this.fleet.buffered > 0 || this.fleet.inFlight > 0) {
      this.event(
        `gave up waiting after ${this.settings.settleMs / 1000} s: ${this.fleet.buffered} readings unsent, ${this.fleet.inFlight} messages unacknowledged`,
      );
    }
    const acked = this.fleet.totals().acked;
    let last = { committed: -1, at: Date.now() };
    while (Date.now() < deadline) {
      const committed = await this.committed();
      const backlog = await this.backlog();
      if (committed !== null && committed >= acked && (backlog ?? 0) === 0) return;
      if (committed !== last.committed) last = { committed: committed ?? -1, at: Date.now() };
      // Nothing moves any more and the gateway holds nothing: what is missing is not coming.
      else if (Date.now() - last.at > QUIET_MS && (backlog ?? 0) === 0) return;
      await delay(200);
    }
    this.event(`gave up waiting for the cloud after ${this.settings.settleMs / 1000} s`);
  }

  private async sample(): Promise<void> {
    const at = Date.now();
    const totals = this.fleet.totals();
    const [committed, backlog] = await Promise.all([this.committed(), this.backlog()]);
    const seconds = Math.max(0.001, (at - this.last.at) / 1000);
    const sample: TimelineSample = {
      t: +((at - this.startedAt) / 1000).toFixed(3),
      sent: totals.sent,
      acked: totals.acked,
      committed,
      sentRate: Math.round((totals.sent - this.last.sent) / seconds),
      ackedRate: Math.round((totals.acked - this.last.acked) / seconds),
      committedRate:
        committed === null || this.last.committed === null ? null : Math.round((committed - this.last.committed) / seconds),
      backlog,
      connected: totals.connected,
    };
    this.last = { at, sent: totals.sent, acked: totals.acked, committed: committed ?? this.last.committed };
    this.timeline.push(sample);
    this.hooks.onSample?.(sample, {
      phase: this.phaseName,
      elapsedMs: at - this.startedAt,
      totalMs: this.totalMs,
      buffered: this.fleet.buffered,
      inFlight: this.fleet.inFlight,
    });
  }

  /** Records of this fleet the cloud-stub holds, or null if it cannot be asked right now. */
  private async committed(): Promise<number | null> {
    const stats = await getJson<{ devices: Record<string, number> }>(`${this.targets.cloudAdmin}/v1/stats`);
    if (!stats) return null;
    let n = 0;
    for (const [deviceId, records] of Object.entries(stats.devices))
      if (deviceId.startsWith(this.settings.idPrefix)) n += records;
    return n;
  }

  private async backlog(): Promise<number | null> {
    if (!this.targets.gatewayAdmin) return null;
    const stats = await getJson<{ journal: { rows: number } }>(`${this.targets.gatewayAdmin}/v1/stats`);
    return stats ? stats.journal.rows : null;
  }
}

const TICK_MS = 20;
const QUIET_MS = 5000;

async function getJson<T>(url: string): Promise<T | null> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return res.ok ? ((await res.json()) as T) : null;
  } catch {
    return null;
  }
}

function show(ramp: Ramp): string {
  return ramp.from === ramp.to ? String(ramp.from) : `${ramp.from} -> ${ramp.to}`;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function describe(settings: SimSettings): Record<string, unknown> {
  return {
    devices: settings.devices,
    protocol: settings.protocol,
    qos: settings.qos,
    mqttVersion: settings.mqttVersion,
    window: settings.window,
    payload: 'bytes' in settings.payload ? `${settings.payload.bytes} bytes` : 'template',
    churn: settings.churn,
    messagesPerDevice: settings.messagesPerDevice ?? null,
    phases: settings.phases.map((p) => p.name).join(', '),
    idPrefix: settings.idPrefix,
    stack: settings.stack ? 'managed' : 'given',
    tokens: settings.stack || settings.signingKey ? 'minted' : 'anonymous',
  };
}
