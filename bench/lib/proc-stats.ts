/**
 * What /proc says about a process and about the machine's TCP stack: a process's memory (VmRSS, VmHWM: all of
 * its threads, worker threads included; not its children), sampled on a timer and labelled by phase; and the
 * kernel's TCP counters (listen queue overflows, SYN cookies, retransmits), which are per network namespace,
 * not per process: other work on the machine moves them too.
 */
import { readFileSync } from 'node:fs';

export interface MemorySample {
  /** Seconds since the sampler started. */
  t: number;
  phase: string;
  rssMB: number;
  /** The peak RSS so far (VmHWM). */
  hwmMB: number;
  threads: number;
}

/** VmRSS, VmHWM (MB) and Threads of a live process, from /proc/<pid>/status; undefined once it is gone. */
export function processMemory(pid: number): Omit<MemorySample, 't' | 'phase'> | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMB: +(field('VmRSS') / 1024).toFixed(1), hwmMB: +(field('VmHWM') / 1024).toFixed(1), threads: field('Threads') };
}

/** Samples a process's memory every `intervalMs`, each sample labelled with the phase set last. */
export class MemorySampler {
  readonly samples: MemorySample[] = [];
  phase = 'start';
  private readonly started = performance.now();
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly pid: number,
    intervalMs = 500,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  /** Starts a phase, with a sample at its start. */
  enter(phase: string): MemorySample | undefined {
    this.phase = phase;
    return this.sample();
  }

  sample(): MemorySample | undefined {
    const memory = processMemory(this.pid);
    if (!memory) return undefined;
    const sample = { t: +((performance.now() - this.started) / 1000).toFixed(2), phase: this.phase, ...memory };
    this.samples.push(sample);
    return sample;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  inPhase(phase: string): MemorySample[] {
    return this.samples.filter((s) => s.phase === phase);
  }

  /** The peak RSS over the run: the highest VmHWM seen (the kernel's, so between samples too). */
  peakMB(): number {
    return Math.max(...this.samples.map((s) => s.hwmMB));
  }
}

export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : +((sorted[mid - 1]! + sorted[mid]!) / 2).toFixed(1);
}

/** Least-squares slope of RSS over time, MB per minute: growth under a steady load. */
export function rssSlopeMBPerMin(samples: MemorySample[]): number {
  if (samples.length < 2) return NaN;
  const n = samples.length;
  const mt = samples.reduce((a, s) => a + s.t, 0) / n;
  const mr = samples.reduce((a, s) => a + s.rssMB, 0) / n;
  const num = samples.reduce((a, s) => a + (s.t - mt) * (s.rssMB - mr), 0);
  const den = samples.reduce((a, s) => a + (s.t - mt) ** 2, 0);
  return +((num / den) * 60).toFixed(2);
}

const TCP_COUNTERS = {
  TcpExt: [
    'ListenOverflows',
    'ListenDrops',
    'TCPReqQFullDrop',
    'TCPReqQFullDoCookies',
    'SyncookiesSent',
    'TCPTimeouts',
    'TCPSynRetrans',
  ],
  Tcp: ['ActiveOpens', 'AttemptFails', 'EstabResets', 'RetransSegs'],
} as const;

/** The kernel's TCP counters of interest (this network namespace, all processes). */
export function tcpCounters(): Record<string, number> {
  const counters: Record<string, number> = {};
  for (const file of ['/proc/net/netstat', '/proc/net/snmp']) {
    let lines: string[];
    try {
      lines = readFileSync(file, 'utf8').trim().split('\n');
    } catch {
      continue;
    }
    // Pairs of lines: "Prefix: Name1 Name2 ..." then "Prefix: value1 value2 ...".
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const names = lines[i]!.split(/\s+/);
      const values = lines[i + 1]!.split(/\s+/);
      const prefix = names[0]!.replace(':', '') as keyof typeof TCP_COUNTERS;
      const wanted = TCP_COUNTERS[prefix] as readonly string[] | undefined;
      if (!wanted) continue;
      names.forEach((name, k) => {
        if (wanted.includes(name)) counters[name] = Number(values[k]);
      });
    }
  }
  return counters;
}

/** Counter increases since `before`. */
export function tcpCountersSince(before: Record<string, number>): Record<string, number> {
  const now = tcpCounters();
  return Object.fromEntries(Object.entries(now).map(([name, value]) => [name, value - (before[name] ?? 0)]));
}
