/**
 * A cloud-stub and a gateway forwarding to it, each its own `fleetgate` process with its data under `dir`,
 * as the benchmarks run them: anonymous devices, MQTT on a free port, no device gRPC listener.
 */
import { join } from 'node:path';
import type { GatewayStats } from '@fleetgate/gateway';
import { portOf, startFleetgate, type Started } from '../../test/support/fleetgate-process.ts';

export interface StackOptions {
  durability: string;
  /** Extra `fleetgate gateway` flags. */
  gatewayArgs?: string[];
  /** Extra environment of the gateway process (e.g. NODE_OPTIONS). */
  gatewayEnv?: NodeJS.ProcessEnv;
}

export interface FleetgateStack {
  gateway: Started;
  cloud: Started;
  mqttPort: number;
  /** The cloud-stub's data folder (its SQLite sink). */
  cloudData: string;
  gatewayStats(): Promise<GatewayStats>;
  /** Records committed at the cloud-stub. */
  cloudRecords(): Promise<number>;
  /** Waits until the cloud-stub holds `count` records (or `timeoutMs` passed); resolves with what it holds. */
  waitForCloud(count: number, timeoutMs: number): Promise<number>;
  /** SIGTERM to the gateway, then the cloud-stub. */
  stop(): Promise<void>;
}

export async function startStack(dir: string, options: StackOptions): Promise<FleetgateStack> {
  const cloudData = join(dir, 'cloud');
  const cloud = await startFleetgate(
    'cloud',
    [
      'cloud',
      '--allow-anonymous',
      '--listen',
      '127.0.0.1:0',
      '--admin',
      '127.0.0.1:0',
      '--data',
      cloudData,
      '--durability',
      options.durability,
    ],
    'cloud-stub ready',
  );
  let gateway: Started;
  try {
    gateway = await startFleetgate(
      'gateway',
      benchGatewayArgs(portOf(cloud.ready.listen), join(dir, 'gateway'), options.durability, options.gatewayArgs ?? []),
      'gateway ready',
      options.gatewayEnv,
    );
  } catch (err: unknown) {
    await cloud.process.stop();
    throw err;
  }
  const gatewayAdmin = `http://127.0.0.1:${portOf(gateway.ready.admin)}`;
  const cloudAdmin = `http://127.0.0.1:${portOf(cloud.ready.admin)}`;
  /** GET of an admin endpoint; a failure names the process, whether it is still running, and its last output. */
  const admin = async <T>(proc: Started['process'], url: string): Promise<T> => {
    try {
      return (await (await fetch(url)).json()) as T;
    } catch (err: unknown) {
      const state = proc.running ? 'still running' : `exited: ${JSON.stringify(await proc.exited)}`;
      throw proc.failure(`admin ${url} failed (${String((err as Error).cause ?? (err as Error).message)}; ${state})`);
    }
  };
  const cloudRecords = async () => (await admin<{ records: number }>(cloud.process, `${cloudAdmin}/v1/stats`)).records;
  return {
    gateway,
    cloud,
    mqttPort: portOf(gateway.ready.mqtt),
    cloudData,
    gatewayStats: () => admin<GatewayStats>(gateway.process, `${gatewayAdmin}/v1/stats`),
    cloudRecords,
    async waitForCloud(count, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      let records = await cloudRecords();
      while (records < count && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        records = await cloudRecords();
      }
      return records;
    },
    async stop() {
      await gateway.process.stop();
      await cloud.process.stop();
    },
  };
}

/**
 * `fleetgate gateway` as every bench starts it: anonymous MQTT on a free port, no device link, its data in `data`,
 * streaming to the cloud-stub on `upstreamPort`; `extra` flags last (they win).
 */
export function benchGatewayArgs(upstreamPort: number, data: string, durability: string, extra: readonly string[]): string[] {
  return [
    'gateway',
    '--gateway-id',
    'bench',
    '--allow-anonymous',
    '--mqtt',
    '127.0.0.1:0',
    '--admin',
    '127.0.0.1:0',
    '--upstream',
    `127.0.0.1:${upstreamPort}`,
    '--data',
    data,
    '--durability',
    durability,
    '--device-grpc',
    'off',
    ...extra,
  ];
}
