/**
 * What the report's charts draw, as the JSON embedded in the page: one entry per chart, x in seconds since the
 * start, a column per series (null is a gap), and the faults and phases every chart marks. The page script
 * (assets/report-script.js) reads it and knows nothing of SimResult.
 */
import type { FaultMarker, PhaseMarker, SimResult, TimelineSample } from '../result.ts';

/** One chart as the page script draws it: x in seconds since the start, one column per series (null = gap). */
export interface ReportChart {
  id: string;
  title: string;
  /** Short, after the values in the legend: msg/s, ms, rows. */
  unit: string;
  /** What the numbers are, under the title. */
  note: string;
  /** A log y axis (latency); linear from 0 otherwise. */
  log?: boolean;
  x: number[];
  series: Array<{ label: string; color: string; values: Array<number | null> }>;
}

/** The JSON embedded in the page (element `#report-data`), all the page script reads. */
export interface ReportData {
  /** The right end of every chart's x axis, so the charts line up under each other. */
  xMax: number;
  faultColor: string;
  faults: FaultMarker[];
  phases: PhaseMarker[];
  charts: ReportChart[];
}

const FAULT_COLOR = '#d62728';

/** Series colours; within one chart all differ, and none is the fault marker's red. */
const COLOR = {
  sent: '#1f77b4',
  acked: '#2ca02c',
  committed: '#9467bd',
  p50: '#2ca02c',
  p99: '#ff7f0e',
  max: '#8c564b',
  backlog: '#17becf',
  connected: '#1f77b4',
} as const;

/** The four charts of a run: throughput, latency over time, journal backlog, connected devices. */
export function reportData(result: SimResult): ReportData {
  const tl = result.timeline;
  const x = tl.map((s) => s.t);
  const col = <K extends keyof TimelineSample>(key: K): Array<TimelineSample[K]> => tl.map((s) => s[key]);
  const lat = result.latencyOverTime;
  const lastOf = (ts: number[]): number => ts.reduce((m, t) => Math.max(m, t), 0);
  const xMax = Math.max(
    1,
    (result.endedAt - result.startedAt) / 1000,
    lastOf(x),
    lastOf(lat.map((s) => s.t + 1)),
    lastOf(result.faults.map((f) => f.t)),
    lastOf(result.phases.map((p) => p.to)),
  );
  return {
    xMax,
    faultColor: FAULT_COLOR,
    faults: [...result.faults].sort((a, b) => a.t - b.t),
    phases: result.phases,
    charts: [
      {
        id: 'throughput',
        title: 'Throughput',
        unit: 'msg/s',
        note: 'messages per second, whole fleet',
        x,
        series: [
          { label: 'sent', color: COLOR.sent, values: col('sentRate') },
          { label: 'acked', color: COLOR.acked, values: col('ackedRate') },
          { label: 'committed', color: COLOR.committed, values: col('committedRate') },
        ],
      },
      {
        id: 'latency',
        title: 'Latency',
        unit: 'ms',
        note: 'ms, device send → cloud commit, log scale',
        log: true,
        x: lat.map((s) => s.t),
        series: [
          { label: 'p50', color: COLOR.p50, values: lat.map((s) => s.p50) },
          { label: 'p99', color: COLOR.p99, values: lat.map((s) => s.p99) },
          { label: 'max', color: COLOR.max, values: lat.map((s) => s.max) },
        ],
      },
      {
        id: 'backlog',
        title: 'Journal backlog',
        unit: 'rows',
        note: 'journal rows not yet acked by the cloud',
        x,
        series: [{ label: 'backlog', color: COLOR.backlog, values: col('backlog') }],
      },
      {
        id: 'connected',
        title: 'Connected devices',
        unit: 'devices',
        note: 'at each sample',
        x,
        series: [{ label: 'connected', color: COLOR.connected, values: col('connected') }],
      },
    ],
  };
}
