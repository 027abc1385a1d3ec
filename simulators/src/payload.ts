/**
 * What simulated devices send. Every payload is a JSON object that starts with `{"_n":N,"_t":T` (the device's
 * message number, from 1, and the time it was taken, ms since the epoch): the verifier reads those back from
 * what arrived at the cloud. The rest is padding up to a size (`--payload BYTES`) or a template
 * (`--payload-template`): a JSON object whose string values starting with `$` are generated per message.
 */
import { randomUUID } from 'node:crypto';
import { ConfigError } from '@fleetgate/core';

export type PayloadSpec = { bytes: number } | { template: unknown };

/** Makes the payload of message `n` of `deviceId`, taken at `timeMs`. */
export type PayloadMaker = (deviceId: string, n: number, timeMs: number) => string;

const PREFIX_BYTES = '{"_n":,"_t":}'.length + 10 + 17;
/** The smallest `--payload`: the number, the time and a little padding. */
export const MIN_PAYLOAD_BYTES = PREFIX_BYTES + 8;

export const GENERATORS = [
  '$seq',
  '$now',
  '$iso',
  '$device',
  '$uuid',
  '$bool',
  '$int:MIN:MAX',
  '$float:MIN:MAX[:DECIMALS]',
  '$walk:MIN:MAX',
  '$pick:A|B|...',
];

export function payloadMaker(spec: PayloadSpec, field = 'payload'): PayloadMaker {
  if ('bytes' in spec) {
    if (!Number.isInteger(spec.bytes) || spec.bytes < MIN_PAYLOAD_BYTES || spec.bytes > 256 * 1024) {
      throw new ConfigError(
        field,
        `${spec.bytes} bytes: expected a whole number of bytes from ${MIN_PAYLOAD_BYTES} to ${256 * 1024}`,
      );
    }
    const size = spec.bytes;
    return (_deviceId, n, timeMs) => {
      const head = `{"_n":${n},"_t":${timeMs.toFixed(3)},"pad":"`;
      return head + 'x'.repeat(Math.max(0, size - head.length - 2)) + '"}';
    };
  }
  if (typeof spec.template !== 'object' || spec.template === null || Array.isArray(spec.template)) {
    throw new ConfigError(
      field,
      `expected a JSON object (its string values starting with $ are generated: ${GENERATORS.join(', ')})`,
    );
  }
  const make = compile(spec.template, field);
  return (deviceId, n, timeMs) => {
    const body = JSON.stringify(make({ deviceId, n, timeMs }));
    return `{"_n":${n},"_t":${timeMs.toFixed(3)}${body.length > 2 ? ',' : ''}${body.slice(1)}`;
  };
}

/** The message number and time at the start of a payload made here, or undefined if it is not one. */
export function readPayloadHeader(payload: string): { n: number; timeMs: number } | undefined {
  const match = /^\{"_n":(\d+),"_t":([\d.]+)/.exec(payload);
  if (!match) return undefined;
  return { n: Number(match[1]), timeMs: Number(match[2]) };
}

interface Context {
  deviceId: string;
  n: number;
  timeMs: number;
}

type Make = (context: Context) => unknown;

function compile(value: unknown, path: string): Make {
  if (typeof value === 'string' && value.startsWith('$')) return generator(value, path);
  if (Array.isArray(value)) {
    const items = value.map((item, i) => compile(item, `${path}[${i}]`));
    return (context) => items.map((make) => make(context));
  }
  if (typeof value === 'object' && value !== null) {
    const fields = Object.entries(value).map(([key, item]) => {
      if (key === '_n' || key === '_t') throw new ConfigError(`${path}.${key}`, `_n and _t are the simulator's own fields`);
      return [key, compile(item, `${path}.${key}`)] as const;
    });
    return (context) => {
      const out: Record<string, unknown> = {};
      for (const [key, make] of fields) out[key] = make(context);
      return out;
    };
  }
  return () => value;
}

function generator(spec: string, path: string): Make {
  const [name, ...args] = spec.split(':');
  const numbers = (count: number, optional = 0): number[] => {
    const values = args.map(Number);
    if (args.length < count || args.length > count + optional || values.some((v) => !Number.isFinite(v))) {
      throw new ConfigError(
        path,
        `"${spec}" needs ${count}${optional ? ` to ${count + optional}` : ''} numbers after ${name}, separated by ":"`,
      );
    }
    if (values[0]! > values[1]!) throw new ConfigError(path, `"${spec}" has its minimum above its maximum`);
    return values;
  };
  switch (name) {
    case '$seq':
      return ({ n }) => n;
    case '$now':
      return ({ timeMs }) => Math.round(timeMs);
    case '$iso':
      return ({ timeMs }) => new Date(timeMs).toISOString();
    case '$device':
      return ({ deviceId }) => deviceId;
    case '$uuid':
      return () => randomUUID();
    case '$bool':
      return () => Math.random() < 0.5;
    case '$int': {
      const [min, max] = numbers(2);
      return () => Math.floor(min! + Math.random() * (max! - min! + 1));
    }
    case '$float': {
      const [min, max, decimals = 2] = numbers(2, 1);
      return () => +(min! + Math.random() * (max! - min!)).toFixed(decimals);
    }
    case '$walk': {
      // A value that drifts like a sensor reading: a step of up to 1% of the range from the last one, per device.
      const [min, max] = numbers(2);
      const last = new Map<string, number>();
      return ({ deviceId }) => {
        const previous = last.get(deviceId) ?? min! + Math.random() * (max! - min!);
        const next = Math.min(max!, Math.max(min!, previous + (Math.random() - 0.5) * 0.02 * (max! - min!)));
        last.set(deviceId, next);
        return +next.toFixed(3);
      };
    }
    case '$pick': {
      const choices = args.join(':').split('|');
      if (choices.length < 1 || choices[0] === '') throw new ConfigError(path, `"${spec}" needs choices: $pick:A|B|C`);
      return () => choices[Math.floor(Math.random() * choices.length)];
    }
    default:
      throw new ConfigError(
        path,
        `unknown generator "${spec}"; expected one of ${GENERATORS.join(', ')} (a literal "$" string: not possible)`,
      );
  }
}
