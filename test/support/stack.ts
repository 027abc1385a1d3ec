/**
 * A cloud-stub and a gateway as real child processes on free ports (port 0, then kept across restarts so that
 * devices and the gateway find them again), with their data in `dir`.
 */
import { join } from 'node:path';
import type { CloudStats } from '@fleetgate/cloud-stub';
import type { GatewayStats } from '@fleetgate/gateway';
import { portOf, startFleetgate, type FleetgateProcess } from './fleetgate-process.ts';

export class Stack {
  cloud!: FleetgateProcess;
  gateway!: FleetgateProcess;
  cloudPort = 0;
  cloudAdminPort = 0;
  mqttPort = 0;
  deviceGrpcPort = 0;
  gatewayAdminPort = 0;
  /** The gateway's --data (another file system's, e.g. the power-cut one of lazyfs.ts). */
  gatewayData: string;
  /** The cloud-stub's --data (likewise). */
  cloudData: string;

  /** Both processes take --allow-anonymous unless `auth` gives other flags for each. */
  constructor(
    readonly dir: string,
    private readonly gatewayArgs: string[] = [],
    private readonly cloudArgs: string[] = ['--allow-anonymous'],
    private readonly gatewayAuthArgs: string[] = ['--allow-anonymous'],
  ) {
    this.gatewayData = join(dir, 'gateway');
    this.cloudData = join(dir, 'cloud');
  }

  static async start(
    dir: string,
    gatewayArgs: string[] = [],
    auth?: { cloud: string[]; gateway: string[] },
    data: { gateway?: string; cloud?: string } = {},
  ): Promise<Stack> {
    const stack = auth ? new Stack(dir, gatewayArgs, auth.cloud, auth.gateway) : new Stack(dir, gatewayArgs);
    if (data.gateway) stack.gatewayData = data.gateway;
    if (data.cloud) stack.cloudData = data.cloud;
    await stack.startCloud();
    await stack.startGateway();
    return stack;
  }

  /** `extraArgs` for this start only (e.g. a different --credit after a restart). */
  async startCloud(extraArgs: string[] = []): Promise<void> {
    const { process, ready } = await startFleetgate(
      'cloud-stub',
      [
        'cloud',
        '--listen',
        `127.0.0.1:${this.cloudPort}`,
        '--admin',
        `127.0.0.1:${this.cloudAdminPort}`,
        '--data',
        this.cloudData,
        ...this.cloudArgs,
        ...extraArgs,
      ],
      'cloud-stub ready',
    );
    this.cloud = process;
    this.cloudPort = portOf(ready.listen);
    this.cloudAdminPort = portOf(ready.admin);
  }

  async startGateway(): Promise<void> {
    const { process, ready } = await startFleetgate(
      'gateway',
      [
        'gateway',
        '--gateway-id',
        'gw-test',
        ...this.gatewayAuthArgs,
        '--mqtt',
        `127.0.0.1:${this.mqttPort}`,
        '--admin',
        `127.0.0.1:${this.gatewayAdminPort}`,
        '--upstream',
        `127.0.0.1:${this.cloudPort}`,
        '--device-grpc',
        `127.0.0.1:${this.deviceGrpcPort}`,
        '--data',
        this.gatewayData,
        '--reconnect-max-ms',
        '500',
        ...this.gatewayArgs,
      ],
      'gateway ready',
    );
    this.gateway = process;
    this.mqttPort = portOf(ready.mqtt);
    this.deviceGrpcPort = portOf(ready.deviceGrpc);
    this.gatewayAdminPort = portOf(ready.admin);
  }

  async gatewayStats(): Promise<GatewayStats> {
    return (await (await fetch(`http://127.0.0.1:${this.gatewayAdminPort}/v1/stats`)).json()) as GatewayStats;
  }

  async cloudStats(): Promise<CloudStats> {
    return (await (await fetch(`http://127.0.0.1:${this.cloudAdminPort}/v1/stats`)).json()) as CloudStats;
  }

  async holdAcks(hold: boolean): Promise<void> {
    await this.faults({ holdAcks: hold });
  }

  async faults(faults: { holdAcks?: boolean; rejectPayloads?: string | null }): Promise<void> {
    const res = await fetch(`http://127.0.0.1:${this.cloudAdminPort}/v1/faults`, {
      method: 'POST',
      body: JSON.stringify(faults),
    });
    if (!res.ok) throw new Error(`POST /v1/faults: ${res.status} ${await res.text()}`);
  }
}
