/**
 * Routes: which upstreams a record goes to. A route is an MQTT topic filter over the topic the record has as
 * MQTT telemetry (devices/{deviceId}/telemetry, or devices/{deviceId}/telemetry/{stream}; device-SDK records
 * are matched the same way) and the upstreams it sends to. The first route that matches decides; a record that
 * no route matches goes to every upstream, so nothing is left behind by an omission in the configuration.
 */
import { levels, matches } from '../ingress/topic-filter.ts';

export interface Route {
  /** An MQTT topic filter, e.g. devices/+/telemetry/alarms/#. */
  topic: string;
  /** Names of the upstreams that get the records it matches (at least one). */
  to: string[];
}

/** Distinct (device, stream) pairs remembered; past it the memo starts over. */
const MEMO_LIMIT = 10_000;

export class Router {
  private readonly routes: Array<{ levels: string[]; mask: number }>;
  private readonly everywhere: number;
  private readonly memo = new Map<string, number>();

  /** `upstreams`: the configured names in order; bit i of a mask is the i-th. Routes name known upstreams only. */
  constructor(
    private readonly upstreams: readonly string[],
    routes: readonly Route[],
  ) {
    this.everywhere = (1 << upstreams.length) - 1;
    this.routes = routes.map((route) => ({
      levels: levels(route.topic),
      mask: route.to.reduce((mask, name) => {
        const i = upstreams.indexOf(name);
        if (i < 0) throw new RangeError(`route ${route.topic} names "${name}", which is not an upstream`);
        return mask | (1 << i);
      }, 0),
    }));
  }

  /**
   * The upstreams (bits) a record goes to. A replayed dead letter names the upstreams that refused it: it goes
   * to those still configured (the others may have taken it), else it is routed as any record.
   */
  route(record: { deviceId: string; stream: string; upstreams?: readonly string[] }): number {
    const named = (record.upstreams ?? []).reduce(
      (bits, name) => (this.upstreams.includes(name) ? bits | (1 << this.upstreams.indexOf(name)) : bits),
      0,
    );
    return named !== 0 ? named : this.mask(record.deviceId, record.stream);
  }

  /** The upstreams (bits) a record of this device on this stream goes to; never 0. */
  mask(deviceId: string, stream: string): number {
    if (this.routes.length === 0) return this.everywhere;
    const key = `${deviceId}\n${stream}`;
    let mask = this.memo.get(key);
    if (mask === undefined) {
      const topic = ['devices', deviceId, 'telemetry', ...(stream === '' ? [] : levels(stream))];
      mask = this.routes.find((route) => matches(route.levels, topic))?.mask ?? this.everywhere;
      if (this.memo.size >= MEMO_LIMIT) this.memo.clear();
      this.memo.set(key, mask);
    }
    return mask;
  }
}
