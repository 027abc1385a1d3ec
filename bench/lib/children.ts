/** Child processes of the benchmarks: the loader, bare brokers, and fleetgate's own processes. */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { LoadResult, LoadSettings } from './mqtt-load.ts';

const LOADERS = {
  mqtt: fileURLToPath(new URL('./mqtt-load.ts', import.meta.url)),
  sdk: fileURLToPath(new URL('./sdk-load.ts', import.meta.url)),
};

/** Runs a loader (MQTT or device SDK) in its own process; `onEvent` hears "measuring" / "measured" as they happen. */
export async function runLoader(settings: LoadSettings, onEvent: (event: string) => void = () => {}, kind: keyof typeof LOADERS = 'mqtt'): Promise<LoadResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', LOADERS[kind], JSON.stringify(settings)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let result: LoadResult | undefined;
  createInterface({ input: child.stdout! }).on('line', (text) => {
    const event = JSON.parse(text) as { event: string } & LoadResult;
    if (event.event === 'result') result = event;
    else onEvent(event.event);
  });
  const [code] = await once(child, 'exit');
  if (code !== 0 || !result) throw new Error(`the loader failed (exit ${code})`);
  return result;
}

/** Starts a TypeScript server that prints {"port": N} first; returns the port and a stop function. */
export async function startServer(module: URL): Promise<{ port: number; pid: number; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(module)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
  const { port } = JSON.parse(line) as { port: number };
  return {
    port,
    pid: child.pid!,
    stop: async () => {
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
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
