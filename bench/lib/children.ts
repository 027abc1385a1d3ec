/**
 * Child processes of the benchmarks: the loader, the subscriber, bare brokers (fleetgate's own processes are
 * test/support/fleetgate-process.ts'). Each is tracked from spawn to exit; `stopChildren` ends those still
 * running, by pid, so that a benchmark that fails half-way leaves nothing behind.
 *
 * Every process a benchmark measures or loads with runs as plain `node` on built JavaScript, as the gateway
 * does: the loaders and the subscriber are compiled by `npm run bench` (tsconfig.bench.json, into
 * build/bench/), the bare aedes baseline is a .js file. Only this orchestrating process runs through tsx.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { LoadResult, LoadSettings } from './mqtt-load.ts';
import type { SubscriberResult, SubscriberSettings } from './mqtt-subscriber.ts';

const BUILT = new URL('../../build/bench/', import.meta.url);
const LOADERS = {
  mqtt: fileURLToPath(new URL('mqtt-load.js', BUILT)),
  sdk: fileURLToPath(new URL('sdk-load.js', BUILT)),
};
const SUBSCRIBER = fileURLToPath(new URL('mqtt-subscriber.js', BUILT));

/** A server child: where it listens, its pid, and how to stop it. */
export interface ChildServer {
  port: number;
  pid: number;
  stop: () => Promise<void>;
}

/** A loader's stdout event: "connected", "load", "measuring", "measured", "holding"; `at` in ms since the epoch. */
export interface LoaderEvent {
  event: string;
  at?: number;
  ms?: number;
}

const running = new Set<ChildProcess>();

/** Tracks a child until it exits; returns a stop function: SIGTERM, then SIGKILL after `graceMs`. */
export function track(child: ChildProcess, graceMs = 5000): () => Promise<void> {
  running.add(child);
  const exited = once(child, 'exit').then(() => void running.delete(child));
  return async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    }
    await exited;
  };
}

/** Kills every tracked child still running (benchmarks call it in `finally`). */
export async function stopChildren(): Promise<void> {
  await Promise.all(
    [...running].map((child) => {
      child.kill('SIGKILL');
      return once(child, 'exit');
    }),
  );
}

/** Runs a loader (MQTT or device SDK) in its own process; `onEvent` hears "measuring" / "measured" etc. as they happen. */
export async function runLoader(
  settings: LoadSettings,
  onEvent: (event: string, data: LoaderEvent) => void = () => {},
  kind: keyof typeof LOADERS = 'mqtt',
): Promise<LoadResult> {
  const child = spawn(process.execPath, [LOADERS[kind], JSON.stringify(settings)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  track(child);
  const exited = once(child, 'exit');
  let result: LoadResult | undefined;
  createInterface({ input: child.stdout! }).on('line', (text) => {
    const event = JSON.parse(text) as LoaderEvent & LoadResult;
    if (event.event === 'result') result = event;
    else onEvent(event.event, event);
  });
  const [code] = await exited;
  if (code !== 0 || !result) throw new Error(`the loader failed (exit ${code})`);
  return result;
}

/** Starts the baselines' subscriber (mqtt-subscriber.ts); resolves once it is subscribed. */
export async function startSubscriber(settings: SubscriberSettings): Promise<{
  pid: number;
  result: (window: { from: number; to: number }) => Promise<SubscriberResult>;
  stop: () => Promise<void>;
}> {
  const child = spawn(process.execPath, [SUBSCRIBER, JSON.stringify(settings)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const stop = track(child);
  const lines = createInterface({ input: child.stdout! });
  const next = () =>
    Promise.race([
      once(lines, 'line').then(([text]) => JSON.parse(text as string) as { event: string } & SubscriberResult),
      once(child, 'exit').then(([code]) => Promise.reject(new Error(`the subscriber exited (${code})`))),
    ]);
  try {
    const ready = await next();
    if (ready.event !== 'ready') throw new Error(`the subscriber said ${JSON.stringify(ready)}`);
  } catch (err: unknown) {
    await stop();
    throw err;
  }
  return {
    pid: child.pid!,
    result: async (window) => {
      child.stdin!.write(JSON.stringify(window) + '\n');
      const { event: _event, ...result } = await next();
      return result;
    },
    stop,
  };
}

/**
 * Starts a JavaScript server (plain `node`) that prints {"port": N} first; returns the port and a stop function.
 */
export async function startServer(module: URL): Promise<ChildServer> {
  const child = spawn(process.execPath, [fileURLToPath(module)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const stop = track(child);
  const [line] = (await Promise.race([
    once(createInterface({ input: child.stdout! }), 'line'),
    once(child, 'exit').then(([code]) => Promise.reject(new Error(`${fileURLToPath(module)} exited (${code}) before its port`))),
  ])) as [string];
  const { port } = JSON.parse(line) as { port: number };
  return { port, pid: child.pid!, stop };
}

/** CPU seconds (user + system) a live process has used so far, from /proc. */
export function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}
