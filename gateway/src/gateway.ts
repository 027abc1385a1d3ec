/**
 * A gateway: MQTT ingress on this thread, the journal and the uplink on the journal thread, an admin listener.
 *
 *   devices --MQTT--> MqttIngress --append--> Pipeline ==thread==> GroupCommit -> SqliteJournal
 *                                                                  Uplink <- journal -> backend (gRPC)
 *
 * Start order: journal (so nothing is accepted before it can be kept), MQTT, admin. Close in reverse, with the
 * journal last so that what was accepted is committed.
 */
import { EventEmitter } from 'node:events';
import { AdminHttpServer, formatHostPort, silentLogger, type HostPort, type Logger } from '@fleetgate/common';
import type { LevelWithSilent } from 'pino';
import { MqttIngress, type IngressStats } from './ingress/mqtt-ingress.ts';
import { validateGatewayOptions, type GatewayOptions } from './options.ts';
import { Pipeline, type PipelineStats } from './pipeline/pipeline.ts';
import type { UplinkStats } from './uplink/uplink.ts';
import { VERSION } from './version.ts';

export interface GatewayStats {
  gatewayId: string;
  version: string;
  uptimeSeconds: number;
  devicesConnected: number;
  journal: PipelineStats['journal'] & { oldestUnackedAgeMs: number | null };
  uplink: UplinkStats;
  ingress: IngressStats;
}

export interface GatewayStartOptions extends GatewayOptions {
  logger?: Logger;
  /** Level of the journal thread's logger (it cannot share this thread's logger object). */
  logLevel?: LevelWithSilent;
}

export class Gateway extends EventEmitter<{ fatal: [Error] }> {
  private readonly startedAt = Date.now();
  private admin: AdminHttpServer | undefined;
  private ingress: MqttIngress | undefined;
  private closing: Promise<void> | undefined;
  private failure: Error | undefined;
  adminAddress: HostPort | undefined;

  private constructor(
    readonly options: GatewayOptions,
    private readonly pipeline: Pipeline,
    private readonly logger: Logger,
  ) {
    super();
    pipeline.on('fatal', (err) => {
      this.failure = err;
      this.logger.fatal({ err: err.message }, 'the journal thread failed');
      this.emit('fatal', err);
    });
  }

  static async start(options: GatewayStartOptions): Promise<Gateway> {
    validateGatewayOptions(options);
    const logger = options.logger ?? silentLogger;
    const pipeline = await Pipeline.start({
      gatewayId: options.gatewayId,
      version: VERSION,
      dataDir: options.dataDir,
      durability: options.durability,
      groupCommit: options.groupCommit,
      tailCacheBytes: options.tailCacheBytes,
      uplink: { ...options.uplink, target: options.upstream },
      logLevel: options.logLevel ?? (logger.level as LevelWithSilent),
    });
    const gateway = new Gateway(options, pipeline, logger);
    try {
      gateway.ingress = await MqttIngress.start({
        listen: options.mqtt,
        pipeline,
        maxPayloadBytes: options.maxPayloadBytes,
        maxUnackedPerConnection: options.maxUnackedPerConnection,
        logger,
      });
      if (options.admin) {
        gateway.admin = new AdminHttpServer(gateway.adminRoutes(), logger);
        gateway.adminAddress = await gateway.admin.listen(options.admin);
      }
    } catch (err: unknown) {
      await gateway.close();
      throw err;
    }
    logger.info(
      {
        gatewayId: options.gatewayId,
        version: VERSION,
        mqtt: formatHostPort(gateway.mqttAddress),
        admin: gateway.adminAddress && formatHostPort(gateway.adminAddress),
        upstream: options.upstream,
        data: options.dataDir,
        durability: options.durability,
      },
      'gateway ready',
    );
    return gateway;
  }

  get mqttAddress(): HostPort {
    return this.ingress!.address;
  }

  async stats(): Promise<GatewayStats> {
    const { journal, uplink } = await this.pipeline.stats();
    const ingress = this.ingress!.stats();
    return {
      gatewayId: this.options.gatewayId,
      version: VERSION,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      devicesConnected: ingress.devicesConnected,
      journal: { ...journal, oldestUnackedAgeMs: journal.oldestTimeMs === null ? null : Date.now() - journal.oldestTimeMs },
      uplink,
      ingress,
    };
  }

  /** Stops accepting, commits what was accepted, stops the uplink, closes the journal. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.ingress?.close();
      await this.pipeline.close();
      await this.admin?.close();
      this.logger.info('gateway stopped');
    })();
    return this.closing;
  }

  private adminRoutes() {
    return {
      // Healthy only while the journal can take messages and the listeners are open.
      'GET /healthz': () => {
        if (this.failure) return { status: 503, body: { status: 'failed', error: this.failure.message } };
        if (this.closing) return { status: 503, body: { status: 'shutting down' } };
        return { status: 200, body: { status: 'ok' } };
      },
      'GET /v1/stats': async () => ({ status: 200, body: await this.stats() }),
    };
  }
}
