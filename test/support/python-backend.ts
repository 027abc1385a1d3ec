/**
 * The Python (grpcio) Uplink backend of python/uplink_backend.py as a child process: a grpc-core server, which
 * enforces the HTTP/2 ping policy that grpc-js servers ignore. Needs Debian's python3-grpcio for /usr/bin/python3
 * (not a pyenv python on PATH); a test checks for it first with requireProgram(this, PYTHON_GRPCIO) (system-packages.ts).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PYTHON = '/usr/bin/python3';
const SCRIPT = join(ROOT, 'test/support/python/uplink_backend.py');

/** Why the Python backend cannot run here, or undefined if it can. */
/** protos/fleetgate/v1/*.proto as a FileDescriptorSet (buf, offline), which the Python side loads its classes from. */
export function buildDescriptorSet(file: string): void {
  const built = spawnSync(join(ROOT, 'node_modules/.bin/buf'), ['build', '-o', file], {
    cwd: join(ROOT, 'protos'),
    encoding: 'utf8',
  });
  if (built.status !== 0) throw new Error(`buf build failed: ${built.stderr || built.error?.message}`);
}

export interface PythonBackendOptions {
  descriptors: string;
  /** grpc.http2.min_ping_interval_without_data_ms (grpc-core's default: 300000). */
  minPingIntervalMs: number;
  /** grpc.http2.max_ping_strikes (grpc-core's default: 2). */
  maxPingStrikes: number;
  /** Say answers_heartbeats in Welcome and answer them. */
  heartbeats: boolean;
}

export class PythonBackend {
  /** What the script wrote to stderr (one line per stream it saw), for failure messages. */
  log = '';

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    readonly exited: Promise<void>,
  ) {
    child.stderr!.on('data', (chunk: Buffer) => (this.log += chunk.toString()));
  }

  static async start(options: PythonBackendOptions): Promise<PythonBackend> {
    const args = [
      SCRIPT,
      '--descriptors',
      options.descriptors,
      '--min-ping-interval-ms',
      String(options.minPingIntervalMs),
      '--max-ping-strikes',
      String(options.maxPingStrikes),
    ];
    const child = spawn(PYTHON, options.heartbeats ? [...args, '--heartbeats'] : args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    let stderr = '';
    const collect = (chunk: Buffer) => (stderr += chunk.toString());
    child.stderr.on('data', collect);
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
      void exited.then(() => reject(new Error(`the Python backend exited before listening: ${stderr}`)));
    });
    child.stderr.off('data', collect);
    return new PythonBackend(child, port, exited);
  }

  /** Streams the backend saw opened. */
  get streams(): number {
    return this.log.split('\n').filter((line) => line.startsWith('stream ')).length;
  }

  /** SIGSTOP: the process stops answering; the kernel still accepts its TCP traffic. */
  pause(): void {
    this.child.kill('SIGSTOP');
  }

  resume(): void {
    this.child.kill('SIGCONT');
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGKILL'); // a stopped process is killed too
    await this.exited;
  }
}
