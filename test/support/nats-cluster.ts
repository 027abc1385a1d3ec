/**
 * A real nats-server JetStream cluster for tests: N nodes (default 3) on 127.0.0.1, each with its own config
 * file, store dir and log file under `dir`, on ports the OS said were free (client, cluster and monitor port per
 * node). Ready when every node answers /healthz and reports a JetStream meta leader. Nodes are ended by pid only.
 *
 *   const cluster = await NatsCluster.start({ dir });  cluster.urls  cluster.kill(0)  cluster.restart(0)  cluster.stop()
 *
 * Needs Debian's nats-server (2.9): `apt-get install nats-server`. Missing, start() throws; a test checks first
 * with requireProgram(this, NATS_SERVER) (support/system-packages.ts), which skips it on such a machine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './free-port.ts';
import { missingMessage, NATS_SERVER } from './system-packages.ts';

export interface NatsClusterOptions {
  /** Where the config, store and log of every node go (a test's temp dir). */
  dir: string;
  nodes?: number;
  /** Cluster name, also the prefix of the server names (`<name>-0`, ...). */
  name?: string;
  /** How long start() and restart() wait for readiness. */
  readyTimeoutMs?: number;
}

interface NatsNode {
  serverName: string;
  clientPort: number;
  clusterPort: number;
  monitorPort: number;
  configFile: string;
  logFile: string;
  child?: ChildProcess;
  exited?: Promise<void>;
}

/** Every node started by any cluster in this process: killed by pid if the process exits before stop(). */
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
});

export class NatsCluster {
  private stopped = false;

  private constructor(
    readonly name: string,
    private readonly nodes: NatsNode[],
    private readonly binary: string,
    private readonly readyTimeoutMs: number,
  ) {}

  /** Starts the cluster and waits until it is ready; a port taken by someone else meanwhile means a new try. */
  static async start({
    dir,
    nodes = 3,
    name = 'fleetgate-test',
    readyTimeoutMs = 30_000,
  }: NatsClusterOptions): Promise<NatsCluster> {
    const binary = natsServerBinary();
    for (let attempt = 1; ; attempt++) {
      const cluster = new NatsCluster(name, await planNodes(dir, nodes, name, attempt), binary, readyTimeoutMs);
      try {
        cluster.nodes.forEach((_, i) => cluster.spawn(i));
        await cluster.waitReady();
        return cluster;
      } catch (err: unknown) {
        await cluster.stop();
        if (attempt >= 3 || !cluster.portTaken()) throw err;
      }
    }
  }

  /** Client URLs of every node, running or not: what a client is configured with. */
  get urls(): string[] {
    return this.nodes.map((n) => `nats://127.0.0.1:${n.clientPort}`);
  }

  get size(): number {
    return this.nodes.length;
  }

  serverName(i: number): string {
    return this.node(i).serverName;
  }

  /** The index of the node with this server name (as JetStream names a stream's leader). */
  indexOf(serverName: string): number {
    const i = this.nodes.findIndex((n) => n.serverName === serverName);
    if (i < 0) throw new Error(`no node named ${serverName} in cluster ${this.name}`);
    return i;
  }

  isRunning(i: number): boolean {
    return this.node(i).child !== undefined;
  }

  /** SIGKILLs node i (by pid) and waits until it is gone. */
  async kill(i: number): Promise<void> {
    const node = this.node(i);
    const { child, exited } = node;
    if (!child) return;
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
    await exited;
  }

  /** Starts node i again on its ports and store dir, and waits until it has rejoined the cluster. */
  async restart(i: number): Promise<void> {
    if (this.stopped) throw new Error('cluster stopped');
    await this.kill(i);
    this.spawn(i);
    await this.waitReady([i]);
  }

  /** Kills every node this cluster started. Idempotent. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.nodes.map((_, i) => this.kill(i)));
  }

  /** Until each node (default: the running ones) answers /healthz and knows the JetStream meta leader. */
  async waitReady(indices = this.nodes.map((_, i) => i).filter((i) => this.isRunning(i))): Promise<void> {
    const deadline = Date.now() + this.readyTimeoutMs;
    for (const i of indices) {
      const node = this.node(i);
      for (;;) {
        if (!node.child) throw new Error(`${node.serverName} exited while starting:\n${this.logTail(i)}`);
        if (await nodeReady(node.monitorPort)) break;
        if (Date.now() > deadline)
          throw new Error(`${node.serverName} not ready after ${this.readyTimeoutMs} ms:\n${this.logTail(i)}`);
        await sleep(100);
      }
    }
  }

  /** The end of node i's log, for error messages. */
  logTail(i: number, lines = 20): string {
    try {
      return readFileSync(this.node(i).logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  private spawn(i: number): void {
    const node = this.node(i);
    const child = spawn(this.binary, ['-c', node.configFile], { stdio: 'ignore' });
    running.add(child);
    node.child = child;
    node.exited = new Promise<void>((resolve) => {
      const done = () => {
        running.delete(child);
        if (node.child === child) node.child = undefined;
        resolve();
      };
      child.once('exit', done);
      child.once('error', done);
    });
  }

  private portTaken(): boolean {
    return this.nodes.some((_, i) => /address already in use/i.test(this.logTail(i, 50)));
  }

  private node(i: number): NatsNode {
    const node = this.nodes[i];
    if (!node) throw new Error(`cluster ${this.name} has no node ${i}`);
    return node;
  }
}

/** Ports, config and folders for every node; written under `dir/attempt-<n>/<server name>/`. */
async function planNodes(dir: string, count: number, name: string, attempt: number): Promise<NatsNode[]> {
  const nodes: NatsNode[] = [];
  for (let i = 0; i < count; i++) {
    const serverName = `${name}-${i}`;
    const home = join(dir, `attempt-${attempt}`, serverName);
    mkdirSync(home, { recursive: true });
    nodes.push({
      serverName,
      clientPort: await freePort(),
      clusterPort: await freePort(),
      monitorPort: await freePort(),
      configFile: join(home, 'nats.conf'),
      logFile: join(home, 'nats.log'),
    });
  }
  for (const node of nodes) {
    const home = join(node.configFile, '..');
    const routes = nodes.filter((n) => n !== node).map((n) => `nats-route://127.0.0.1:${n.clusterPort}`);
    writeFileSync(
      node.configFile,
      [
        `server_name: ${JSON.stringify(node.serverName)}`,
        `listen: "127.0.0.1:${node.clientPort}"`,
        `http: "127.0.0.1:${node.monitorPort}"`,
        `log_file: ${JSON.stringify(node.logFile)}`,
        `jetstream { store_dir: ${JSON.stringify(join(home, 'store'))} }`,
        count > 1
          ? `cluster { name: ${JSON.stringify(name)}, listen: "127.0.0.1:${node.clusterPort}", routes: [${routes.map((r) => JSON.stringify(r)).join(', ')}] }`
          : '',
        '',
      ].join('\n'),
    );
  }
  return nodes;
}

/** /healthz says JetStream is current on this node (2.9: meta, streams and consumers), and /jsz names a meta leader. */
async function nodeReady(monitorPort: number): Promise<boolean> {
  try {
    const health = await fetch(`http://127.0.0.1:${monitorPort}/healthz`, { signal: AbortSignal.timeout(2000) });
    if (!health.ok) return false;
    const jsz = (await (await fetch(`http://127.0.0.1:${monitorPort}/jsz`, { signal: AbortSignal.timeout(2000) })).json()) as {
      meta_cluster?: { leader?: string; cluster_size?: number };
      config?: unknown;
    };
    // A single node has no meta group: JetStream enabled is enough there.
    return jsz.meta_cluster === undefined ? jsz.config !== undefined : Boolean(jsz.meta_cluster.leader);
  } catch {
    return false;
  }
}

/** nats-server (support/system-packages.ts finds it; tests check for it first and skip without it). */
function natsServerBinary(): string {
  const path = NATS_SERVER.locate();
  if (!path) throw new Error(missingMessage(NATS_SERVER));
  return path;
}
