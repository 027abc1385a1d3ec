/**
 * The stack the simulator runs itself when asked to (`--stack managed`, or a scenario whose faults need it): a
 * cloud-stub and a gateway as child processes of this one, so that faults can SIGKILL and restart them. Ports
 * are chosen by the system at the first start and kept across restarts, so devices and the gateway find them
 * again. Devices authenticate with tokens signed by a key pair made in <data>/keys; their logs go to
 * <data>/logs/.
 */
import { createWriteStream, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeys, loadSigningKey, type TokenKey } from '@fleetgate/common';
import { FleetgateProcess, portOf, spawnFleetgate } from './fleetgate-process.ts';

export interface StackSettings {
  /** The fleetgate CLI script (gateway/bin/fleetgate.js). */
  bin: string;
  dataDir: string;
  gatewayId: string;
  gatewayArgs: readonly string[];
  cloudArgs: readonly string[];
}

export class ManagedStack {
  cloud: FleetgateProcess | undefined;
  gateway: FleetgateProcess | undefined;
  private ports = { cloud: 0, cloudAdmin: 0, mqtt: 0, deviceGrpc: 0, gatewayAdmin: 0 };

  private constructor(
    private readonly settings: StackSettings,
    readonly signingKey: TokenKey,
    private readonly publicKeyFile: string,
  ) {}

  static async start(settings: StackSettings): Promise<ManagedStack> {
    const keys = join(settings.dataDir, 'keys');
    if (!existsSync(join(keys, 'fleet.key'))) await generateKeys('EdDSA', keys);
    mkdirSync(join(settings.dataDir, 'logs'), { recursive: true });
    const stack = new ManagedStack(
      settings,
      await loadSigningKey({ keyFile: join(keys, 'fleet.key'), field: '--data' }),
      join(keys, 'fleet.pub'),
    );
    try {
      await stack.startCloud();
      await stack.startGateway();
    } catch (err: unknown) {
      await stack.kill();
      throw err;
    }
    return stack;
  }

  get mqttUrl(): string {
    return `mqtt://127.0.0.1:${this.ports.mqtt}`;
  }

  get deviceGrpc(): string {
    return `127.0.0.1:${this.ports.deviceGrpc}`;
  }

  get gatewayAdmin(): string {
    return `http://127.0.0.1:${this.ports.gatewayAdmin}`;
  }

  get cloudAdmin(): string {
    return `http://127.0.0.1:${this.ports.cloudAdmin}`;
  }

  async startCloud(): Promise<void> {
    const { process, ready } = await this.spawn('cloud-stub', 'cloud-stub ready', [
      'cloud',
      '--listen',
      `127.0.0.1:${this.ports.cloud}`,
      '--admin',
      `127.0.0.1:${this.ports.cloudAdmin}`,
      '--data',
      join(this.settings.dataDir, 'cloud'),
      '--allow-anonymous',
      ...this.settings.cloudArgs,
    ]);
    this.cloud = process;
    this.ports.cloud = portOf(ready.listen);
    this.ports.cloudAdmin = portOf(ready.admin);
  }

  async startGateway(): Promise<void> {
    const { process, ready } = await this.spawn('gateway', 'gateway ready', [
      'gateway',
      '--gateway-id',
      this.settings.gatewayId,
      '--device-key',
      this.publicKeyFile,
      '--mqtt',
      `127.0.0.1:${this.ports.mqtt}`,
      '--device-grpc',
      `127.0.0.1:${this.ports.deviceGrpc}`,
      '--admin',
      `127.0.0.1:${this.ports.gatewayAdmin}`,
      '--upstream',
      `127.0.0.1:${this.ports.cloud}`,
      '--data',
      join(this.settings.dataDir, 'gateway'),
      '--reconnect-max-ms',
      '1000',
      ...this.settings.gatewayArgs,
    ]);
    this.gateway = process;
    this.ports.mqtt = portOf(ready.mqtt);
    this.ports.deviceGrpc = portOf(ready.deviceGrpc);
    this.ports.gatewayAdmin = portOf(ready.admin);
  }

  /** SIGKILL (a crash or a power cut), then a new gateway on the same data after `downMs`. */
  async killGateway(downMs: number): Promise<void> {
    await this.gateway?.kill();
    await delay(downMs);
    await this.startGateway();
  }

  /** SIGTERM (a deploy or an outage of the backend), then a new cloud-stub after `downMs`. */
  async restartCloud(downMs: number): Promise<void> {
    await this.cloud?.stop();
    await delay(downMs);
    await this.startCloud();
  }

  /** SIGTERM both, the gateway first (so that it drains), SIGKILL what is still running after 15 s. */
  async stop(): Promise<void> {
    await this.gateway?.stop(15_000);
    await this.cloud?.stop(15_000);
  }

  async kill(): Promise<void> {
    await Promise.all([this.gateway?.kill(), this.cloud?.kill()]);
  }

  private spawn(name: string, readyMessage: string, args: string[]) {
    return spawnFleetgate(this.settings.bin, name, args, readyMessage, {}, (proc) => {
      const log = createWriteStream(join(this.settings.dataDir, 'logs', `${name}.log`), { flags: 'a' });
      proc.child.stdout!.pipe(log, { end: false });
      proc.child.stderr!.pipe(log, { end: false });
      void proc.exited.then(() => log.end());
    });
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
