/**
 * Real `fleetgate` child processes for end-to-end tests and benchmarks: started through the same bin a user
 * runs (the built JavaScript: `npm test` builds first), ready when their "... ready" log line appears, killed by pid.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { FleetgateProcess, spawnFleetgate, type LogLine } from '@fleetgate/simulators';
import { SOURCE_NODE_ARGS } from './source-node.ts';

export { FleetgateProcess, portOf, type LogLine } from '@fleetgate/simulators';

export const FLEETGATE_BIN = fileURLToPath(new URL('../../cli/bin/fleetgate.js', import.meta.url));

/** Every process started here and not yet reaped; `killAll` ends them (tests call it in afterEach). */
const started = new Set<FleetgateProcess>();

export interface Started {
  process: FleetgateProcess;
  /** The "... ready" log line: it names the bound addresses. */
  ready: LogLine;
}

/**
 * Runs `fleetgate ...args` and waits for its log line `readyMessage`. `bin`: another fleetgate bin than the
 * repository's (an installed package's).
 */
export function startFleetgate(
  name: string,
  args: string[],
  readyMessage: string,
  env: NodeJS.ProcessEnv = {},
  bin = FLEETGATE_BIN,
): Promise<Started> {
  return spawnFleetgate(bin, name, args, readyMessage, env, (proc) => {
    started.add(proc);
    void proc.exited.then(() => started.delete(proc));
  });
}

/** Runs a TypeScript file as its own process (tsx), watched and reaped like the fleetgate processes. */
export function startScript(name: string, script: string, args: string[]): FleetgateProcess {
  const child = spawn(process.execPath, [...SOURCE_NODE_ARGS, script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const proc = new FleetgateProcess(name, child);
  started.add(proc);
  void proc.exited.then(() => started.delete(proc));
  return proc;
}

export async function killAll(): Promise<void> {
  await Promise.all([...started].map((p) => p.kill()));
}
