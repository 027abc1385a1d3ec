/**
 * Who may publish and subscribe where. Rules are tried in order; the first that applies decides; when none
 * applies, the answer is no. `{deviceId}` in a pattern stands for the authenticated id of the device asking.
 *
 *   rules:
 *     - allow: [publish, subscribe]
 *       topic: devices/{deviceId}/#
 *     - deny: subscribe
 *       topic: devices/+/secrets/#
 *
 * - publish topic T: the first publish rule whose pattern matches T decides.
 * - subscribe filter F: granted when any part of it may be received (an allow overlaps F before a deny covers
 *   all of F); refused only when everything F could match is denied (as mosquitto does). A broad filter (`#`)
 *   is granted and what the rules deny is filtered at delivery, so stock clients that subscribe to `#` work.
 * - delivery (each message a subscription would forward): the first subscribe rule matching the topic decides,
 *   so a deny still holds inside a broader allowed subscription, and after the rules are changed.
 * Decisions are cached per device and topic; the cache is dropped when the rules change.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';
import { ConfigError } from '@fleetgate/core';
import { covers, intersects, isValidFilter, levels, matches, type Levels } from './topic-filter.ts';

export type Operation = 'publish' | 'subscribe';
const OPERATIONS: readonly Operation[] = ['publish', 'subscribe'];
const DEVICE = '{deviceId}';

export interface AclRule {
  action: 'allow' | 'deny';
  operations: readonly Operation[];
  /** An MQTT filter; a whole level may be {deviceId}. */
  topic: string;
}

/** A device publishes and subscribes only under devices/{itsOwnId}/. */
export const DEFAULT_ACL: readonly AclRule[] = [
  { action: 'allow', operations: ['publish', 'subscribe'], topic: 'devices/{deviceId}/#' },
];

interface CompiledRule extends AclRule {
  levels: Levels;
  hasDevice: boolean;
}

const PUBLISH = 0;
const SUBSCRIBE = 1;
const RECEIVE = 2;

/** Decisions kept per device and kind before the oldest are forgotten. */
const CACHE_PER_DEVICE = 256;

export class Acl {
  private readonly rules: CompiledRule[];
  /** Per device, per kind of question (publish, subscribe, receive), per topic: no key is built per lookup. */
  private readonly cache = new Map<string, [Map<string, boolean>, Map<string, boolean>, Map<string, boolean>]>();

  constructor(rules: readonly AclRule[] = DEFAULT_ACL) {
    this.rules = rules.map((rule) => ({ ...rule, levels: levels(rule.topic), hasDevice: levels(rule.topic).includes(DEVICE) }));
  }

  /** Reads rules from a YAML (or JSON) file; every mistake is a ConfigError naming the rule and the field. */
  static fromFile(file: string, field = '--acl'): Acl {
    let doc: unknown;
    try {
      // yaml is loaded with the first ACL file: a gateway on the default rules does not carry it.
      doc = (createRequire(import.meta.url)('yaml') as typeof Yaml).parse(readFileSync(file, 'utf8'));
    } catch (err: unknown) {
      throw new ConfigError(field, `cannot read ${file}: ${(err as Error).message}`);
    }
    const rules = (doc as { rules?: unknown } | null)?.rules;
    if (!Array.isArray(rules)) throw new ConfigError(field, `${file} must have a list "rules"`);
    return new Acl(rules.map((rule, i) => parseRule(rule, `${field} ${file} rule ${i + 1}`)));
  }

  canPublish(deviceId: string, topic: string): boolean {
    return this.decide(PUBLISH, deviceId, topic, () => {
      const t = levels(topic);
      const rule = this.rules.find((r) => r.operations.includes('publish') && matches(this.instantiate(r, deviceId), t));
      return rule?.action === 'allow';
    });
  }

  canSubscribe(deviceId: string, filter: string): boolean {
    return this.decide(SUBSCRIBE, deviceId, filter, () => {
      if (!isValidFilter(filter)) return false;
      const f = levels(filter);
      for (const rule of this.rules) {
        if (!rule.operations.includes('subscribe')) continue;
        const pattern = this.instantiate(rule, deviceId);
        if (!intersects(pattern, f)) continue;
        // An allow overlapping F: something F matches may be delivered (each delivery is checked, canReceive).
        if (rule.action === 'allow') return true;
        // A deny covering all of F, before any allow: nothing F matches could ever be delivered.
        if (covers(pattern, f)) return false;
      }
      return false;
    });
  }

  /** May a message on `topic` be delivered to `deviceId` (through a subscription it was granted)? */
  canReceive(deviceId: string, topic: string): boolean {
    return this.decide(RECEIVE, deviceId, topic, () => {
      const t = levels(topic);
      const rule = this.rules.find((r) => r.operations.includes('subscribe') && matches(this.instantiate(r, deviceId), t));
      return rule?.action === 'allow';
    });
  }

  private instantiate(rule: CompiledRule, deviceId: string): Levels {
    return rule.hasDevice ? rule.levels.map((level) => (level === DEVICE ? deviceId : level)) : rule.levels;
  }

  private decide(kind: 0 | 1 | 2, deviceId: string, topic: string, compute: () => boolean): boolean {
    let perDevice = this.cache.get(deviceId);
    if (!perDevice) this.cache.set(deviceId, (perDevice = [new Map(), new Map(), new Map()]));
    const decisions = perDevice[kind];
    let decision = decisions.get(topic);
    if (decision === undefined) {
      decision = compute();
      if (decisions.size >= CACHE_PER_DEVICE) decisions.delete(decisions.keys().next().value!);
      decisions.set(topic, decision);
    }
    return decision;
  }

  /** Forgets what it knows of a device (it disconnected). */
  forget(deviceId: string): void {
    this.cache.delete(deviceId);
  }
}

function parseRule(raw: unknown, where: string): AclRule {
  if (typeof raw !== 'object' || raw === null)
    throw new ConfigError(where, 'must be a mapping with "allow" or "deny" and "topic"');
  const rule = raw as Record<string, unknown>;
  const unknownKeys = Object.keys(rule).filter((k) => !['allow', 'deny', 'topic'].includes(k));
  if (unknownKeys.length > 0)
    throw new ConfigError(where, `unknown field "${unknownKeys[0]}" (expected allow or deny, and topic)`);
  if ('allow' in rule === 'deny' in rule) throw new ConfigError(where, 'needs exactly one of "allow" or "deny"');
  const action = 'allow' in rule ? 'allow' : 'deny';
  const value = rule[action];
  const operations = (Array.isArray(value) ? value : [value]) as unknown[];
  for (const op of operations) {
    if (!OPERATIONS.includes(op as Operation))
      throw new ConfigError(where, `"${action}: ${String(op)}" is not publish or subscribe`);
  }
  const topic = rule.topic;
  if (typeof topic !== 'string' || !isValidFilter(topic.replaceAll(DEVICE, 'x'))) {
    throw new ConfigError(where, `"topic" must be an MQTT topic filter (levels, + and a final #), got ${JSON.stringify(topic)}`);
  }
  if (topic.includes('{') && !levels(topic).every((level) => !level.includes('{') || level === DEVICE)) {
    throw new ConfigError(where, `"topic" ${topic}: the only placeholder is {deviceId}, as a whole level`);
  }
  return { action, operations: operations as Operation[], topic };
}
