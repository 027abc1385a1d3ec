/**
 * A `fleetgate` child process (gateway or cloud-stub), watched through its JSON log lines: ready when its
 * "... ready" line appears (which also says the ports it bound), stopped with SIGTERM or killed with SIGKILL by
 * pid. Used by the simulator's managed stack, the end-to-end tests and the benchmarks.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';

/** One JSON log line of a fleetgate process. */
export type LogLine = Record<string, unknown> & { msg?: string };

export class FleetgateProcess {
  /** The last lines it printed (stdout and stderr), for failure messages. */
  readonly lines: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private watchers: Array<{ test: (line: LogLine) => boolean; resolve: (line: LogLine) => void }> = [];

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    this.exited = once(child, 'exit').then(([code, signal]) => ({
      code: code as number | null,
      signal: signal as NodeJS.Signals | null,
    }));
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (text) => this.onLine(text));
    }
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves with the first log line (from now on) that passes `test`; rejects if the process exits first. */
  waitForLine(test: (line: LogLine) => boolean, timeoutMs = 20_000): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(this.failure(`no matching log line within ${timeoutMs} ms`)), timeoutMs);
      const watcher = {
        test,
        resolve: (line: LogLine) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      this.watchers.push(watcher);
      void this.exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(this.failure(`exited (${signal ?? code}) before the expected log line`));
      });
    });
  }

  /** The first log line printed so far that passes `test`, else the first one to come. */
  async findLine(test: (line: LogLine) => boolean, timeoutMs = 20_000): Promise<LogLine> {
    for (const text of this.lines) {
      try {
        const line = JSON.parse(text) as LogLine;
        if (test(line)) return line;
      } catch {
        // not a log line
      }
    }
    return this.waitForLine(test, timeoutMs);
  }

  /** SIGKILL: no chance to flush or say goodbye, as in a crash or a power cut. */
  async kill(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. Resolves with its exit code. */
  async stop(graceMs = 10_000): Promise<number | null> {
    if (this.running) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    return (await this.exited).code;
  }

  failure(message: string): Error {
    return new Error(`${this.name} (pid ${this.child.pid}) ${message}; its last output:\n${this.lines.slice(-20).join('\n')}`);
  }

  private onLine(text: string): void {
    this.lines.push(text);
    if (this.lines.length > 5000) this.lines.shift();
    if (this.watchers.length === 0) return;
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      return;
    }
    const matched = this.watchers.filter((watcher) => watcher.test(line));
    if (matched.length === 0) return;
    this.watchers = this.watchers.filter((watcher) => !matched.includes(watcher));
    for (const watcher of matched) watcher.resolve(line);
  }
}

/** Runs `node bin ...args` and waits for its log line `readyMessage`; `onStart` hears of the process at once. */
export async function spawnFleetgate(
  bin: string,
  name: string,
  args: string[],
  readyMessage: string,
  env: NodeJS.ProcessEnv = {},
  onStart: (process: FleetgateProcess) => void = () => {},
): Promise<{ process: FleetgateProcess; ready: LogLine }> {
  const child = spawn(process.execPath, [bin, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, FLEETGATE_LOG_LEVEL: 'info', ...env },
  });
  const proc = new FleetgateProcess(name, child);
  onStart(proc);
  const ready = await proc.waitForLine((line) => line.msg === readyMessage, 30_000);
  return { process: proc, ready };
}

/** "127.0.0.1:1234" -> 1234 */
export function portOf(address: unknown): number {
  const port = Number(String(address).split(':').pop());
  if (!Number.isInteger(port) || port <= 0) throw new Error(`no port in ${String(address)}`);
  return port;
}
