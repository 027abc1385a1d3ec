/**
 * Scenarios: YAML files of phases (ramp up, steady, burst, ...) and the faults to inject in them. Shipped ones
 * are in simulators/scenarios/. Every field is checked at load with a message naming it.
 *
 *   name: gateway-crash
 *   devices: 40            # the fleet (flags override these)
 *   protocol: mix          # mqtt | sdk | mix
 *   rate: 5                # readings per second per device, for phases that do not say
 *   stack: {}              # the simulator starts the gateway and cloud-stub (kill-gateway needs it)
 *   phases:
 *     - { name: ramp-up, duration: 5s, devices: { from: 0, to: 40 } }
 *     - name: steady
 *       duration: 20s
 *       faults: [{ at: 5s, kind: kill-gateway, down: 1s }]
 *     - { name: burst, duration: 5s, rate: 50 }
 */
import { readFileSync } from 'node:fs';
import ms from 'ms';
import { parse } from 'yaml';
import { ConfigError } from '@fleetgate/core';
import { MIN_PAYLOAD_BYTES, type PayloadSpec } from './payload.ts';

export type Protocol = 'mqtt' | 'sdk' | 'mix';
export const FAULT_KINDS = ['kill-gateway', 'restart-cloud', 'expire-tokens', 'reconnect-storm'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** A value that goes linearly from `from` to `to` over a phase. */
export interface Ramp {
  from: number;
  to: number;
}

export interface FaultSpec {
  kind: FaultKind;
  /** From the start of its phase. */
  atMs: number;
  /** kill-gateway, restart-cloud: how long it stays down. */
  downMs: number;
}

export interface PhaseSpec {
  name: string;
  durationMs: number;
  /** Active devices; undefined: as the last phase ended (all devices at first). */
  devices?: Ramp;
  /** Readings per second per device; undefined: as the last phase ended. */
  rate?: Ramp;
  /** Connection drops per device per minute; undefined: the fleet's --churn. */
  churn?: number;
  faults: FaultSpec[];
}

export interface Scenario {
  name?: string;
  description?: string;
  devices?: number;
  protocol?: Protocol;
  qos?: 0 | 1;
  rate?: number;
  payload?: PayloadSpec;
  window?: number;
  churn?: number;
  /** Present: the simulator runs the gateway and cloud-stub itself, with these extra flags. */
  stack?: { gatewayArgs: string[]; cloudArgs: string[] };
  phases: PhaseSpec[];
}

const TOP_FIELDS = ['name', 'description', 'devices', 'protocol', 'qos', 'rate', 'payload', 'window', 'churn', 'stack', 'phases'];

export function loadScenario(file: string): Scenario {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err: unknown) {
    throw new ConfigError('--scenario', `cannot read ${file}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err: unknown) {
    throw new ConfigError('--scenario', `${file} is not valid YAML: ${(err as Error).message}`);
  }
  return parseScenario(doc);
}

export function parseScenario(doc: unknown): Scenario {
  const top = object(doc, 'scenario');
  unknownFields(top, TOP_FIELDS, 'scenario');
  const scenario: Scenario = { phases: [] };
  if (top.name !== undefined) scenario.name = string(top.name, 'name');
  if (top.description !== undefined) scenario.description = string(top.description, 'description');
  if (top.devices !== undefined) scenario.devices = integer(top.devices, 'devices', 1);
  if (top.protocol !== undefined) scenario.protocol = oneOf(top.protocol, 'protocol', ['mqtt', 'sdk', 'mix'] as const);
  if (top.qos !== undefined) scenario.qos = oneOf(top.qos, 'qos', [0, 1] as const);
  if (top.rate !== undefined) scenario.rate = number(top.rate, 'rate', 0);
  if (top.window !== undefined) scenario.window = integer(top.window, 'window', 1);
  if (top.churn !== undefined) scenario.churn = number(top.churn, 'churn', 0);
  if (top.payload !== undefined) scenario.payload = payloadSpec(top.payload, 'payload');
  if (top.stack !== undefined) {
    const stack = top.stack === null ? {} : object(top.stack, 'stack');
    unknownFields(stack, ['gatewayArgs', 'cloudArgs'], 'stack');
    scenario.stack = {
      gatewayArgs: strings(stack.gatewayArgs ?? [], 'stack.gatewayArgs'),
      cloudArgs: strings(stack.cloudArgs ?? [], 'stack.cloudArgs'),
    };
  }
  if (!Array.isArray(top.phases) || top.phases.length === 0)
    throw new ConfigError(
      'phases',
      'expected a list of at least one phase ({ name, duration, devices?, rate?, churn?, faults? })',
    );
  scenario.phases = top.phases.map((phase, i) => parsePhase(phase, `phases[${i}]`));
  for (const [i, phase] of scenario.phases.entries()) {
    for (const [j, fault] of phase.faults.entries()) {
      const field = `phases[${i}].faults[${j}]`;
      if ((fault.kind === 'kill-gateway' || fault.kind === 'restart-cloud') && !scenario.stack) {
        throw new ConfigError(
          `${field}.kind`,
          `${fault.kind} needs the simulator to run the stack: add "stack: {}" to the scenario`,
        );
      }
    }
  }
  return scenario;
}

function parsePhase(doc: unknown, path: string): PhaseSpec {
  const p = object(doc, path);
  unknownFields(p, ['name', 'duration', 'devices', 'rate', 'churn', 'faults'], path);
  const phase: PhaseSpec = {
    name: string(p.name ?? path, `${path}.name`),
    durationMs: duration(p.duration, `${path}.duration`),
    faults: [],
  };
  if (phase.durationMs <= 0) throw new ConfigError(`${path}.duration`, 'a phase must last more than 0 s');
  if (p.devices !== undefined) phase.devices = ramp(p.devices, `${path}.devices`, true);
  if (p.rate !== undefined) phase.rate = ramp(p.rate, `${path}.rate`, false);
  if (p.churn !== undefined) phase.churn = number(p.churn, `${path}.churn`, 0);
  const faults = p.faults ?? [];
  if (!Array.isArray(faults)) throw new ConfigError(`${path}.faults`, 'expected a list of faults ({ at, kind, down? })');
  phase.faults = faults.map((fault, i) => {
    const field = `${path}.faults[${i}]`;
    const f = object(fault, field);
    unknownFields(f, ['at', 'kind', 'down'], field);
    const spec: FaultSpec = {
      kind: oneOf(f.kind, `${field}.kind`, FAULT_KINDS),
      atMs: duration(f.at ?? 0, `${field}.at`),
      downMs: duration(f.down ?? '1s', `${field}.down`),
    };
    if (spec.atMs >= phase.durationMs)
      throw new ConfigError(`${field}.at`, `${f.at} is not within the phase (it lasts ${ms(phase.durationMs)})`);
    return spec;
  });
  return phase;
}

export function payloadSpec(value: unknown, field: string): PayloadSpec {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < MIN_PAYLOAD_BYTES)
      throw new ConfigError(field, `${value}: expected a number of bytes, at least ${MIN_PAYLOAD_BYTES}, or { template: {...} }`);
    return { bytes: value };
  }
  const p = object(value, field);
  unknownFields(p, ['template'], field);
  return { template: p.template };
}

function ramp(value: unknown, field: string, whole: boolean): Ramp {
  const read = (v: unknown, f: string) => (whole ? integer(v, f, 0) : number(v, f, 0));
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const r = value as Record<string, unknown>;
    unknownFields(r, ['from', 'to'], field);
    return { from: read(r.from, `${field}.from`), to: read(r.to, `${field}.to`) };
  }
  const v = read(value, field);
  return { from: v, to: v };
}

function duration(value: unknown, field: string): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value * 1000;
  const parsed = typeof value === 'string' ? ms(value as ms.StringValue) : undefined;
  if (typeof parsed !== 'number' || !Number.isFinite(parsed) || parsed < 0)
    throw new ConfigError(field, `${JSON.stringify(value)}: expected a duration such as 30s, 2m or a number of seconds`);
  return parsed;
}

function object(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new ConfigError(field, `expected a mapping, got ${JSON.stringify(value)}`);
  return value as Record<string, unknown>;
}

function unknownFields(value: Record<string, unknown>, known: readonly string[], field: string): void {
  const extra = Object.keys(value).find((key) => !known.includes(key));
  if (extra !== undefined) throw new ConfigError(`${field}.${extra}`, `unknown field; expected one of ${known.join(', ')}`);
}

function string(value: unknown, field: string): string {
  if (typeof value !== 'string' || value === '') throw new ConfigError(field, `expected text, got ${JSON.stringify(value)}`);
  return value;
}

function strings(value: unknown, field: string): string[] {
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string'))
    throw new ConfigError(field, 'expected a list of strings');
  return value as string[];
}

function number(value: unknown, field: string, min: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min)
    throw new ConfigError(field, `${JSON.stringify(value)}: expected a number >= ${min}`);
  return value;
}

function integer(value: unknown, field: string, min: number): number {
  if (!Number.isInteger(value) || (value as number) < min)
    throw new ConfigError(field, `${JSON.stringify(value)}: expected a whole number >= ${min}`);
  return value as number;
}

function oneOf<T extends string | number>(value: unknown, field: string, choices: readonly T[]): T {
  if (!choices.includes(value as T))
    throw new ConfigError(field, `${JSON.stringify(value)}: expected one of ${choices.join(', ')}`);
  return value as T;
}
