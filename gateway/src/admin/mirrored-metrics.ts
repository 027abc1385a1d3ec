/**
 * The two metric kinds the gateway's registry holds besides prom-client's gauges: counters whose totals are kept
 * elsewhere (stats since start) and histograms whose buckets are counted elsewhere (the journal thread, the
 * uplinks). Both are read from one stats snapshot per scrape (metrics.ts).
 */
import { Counter, type LabelValues, type Metric, type MetricValueWithName, type Registry } from 'prom-client';
import type { HistogramSnapshot } from '@fleetgate/core';

export const METRICS_PREFIX = 'fleetgate_';

/**
 * A Prometheus counter that mirrors a total kept elsewhere (the stats): each update adds what the total grew by
 * since the last one. A total that went back (its source started over) restarts the series from it, which
 * Prometheus reads as a counter reset.
 */
export class MirroredCounter<L extends string> {
  private readonly counter: Counter<L>;
  private readonly last = new Map<string, number>();

  constructor(
    registry: Registry,
    name: string,
    help: string,
    private readonly labelNames: readonly L[],
  ) {
    this.counter = new Counter<L>({ name: METRICS_PREFIX + name, help, labelNames, registers: [registry] });
  }

  set(labels: LabelValues<L>, total: number): void {
    const key = this.labelNames.map((name) => labels[name]).join('\u0000');
    const previous = this.last.get(key) ?? 0;
    if (total < previous) this.counter.remove(labels);
    this.counter.inc(labels, total < previous ? total : total - previous);
    this.last.set(key, total);
  }
}

/**
 * A histogram whose buckets are counted elsewhere (the journal thread, the uplinks) and exported as they are:
 * prom-client's Histogram can only be fed one observation at a time, so this is a metric of its own that the
 * registry reads. One series per label set given to set() since the last reset().
 */
export class ExportedHistogram<L extends string = never> {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly name: string;
  private series = new Map<string, { labels: LabelValues<L>; snapshot: HistogramSnapshot }>();

  constructor(
    registry: Registry,
    name: string,
    readonly help: string,
  ) {
    this.name = METRICS_PREFIX + name;
    registry.registerMetric(this as unknown as Metric);
  }

  set(snapshot: HistogramSnapshot, labels: LabelValues<L> = {} as LabelValues<L>): void {
    this.series.set(JSON.stringify(labels), { labels, snapshot });
  }

  reset(): void {
    this.series = new Map();
  }

  /** What the registry reads: the shape prom-client's own metrics answer. */
  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Array<MetricValueWithName<string>> }> {
    const values: Array<MetricValueWithName<string>> = [];
    for (const { labels, snapshot: d } of this.series.values()) {
      let cumulative = 0;
      d.boundsMs.forEach((bound, i) => {
        cumulative += d.counts[i]!;
        values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: bound / 1000 }, value: cumulative });
      });
      values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: '+Inf' }, value: d.count });
      values.push({ metricName: `${this.name}_sum`, labels, value: d.sumMs / 1000 });
      values.push({ metricName: `${this.name}_count`, labels, value: d.count });
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }
}
