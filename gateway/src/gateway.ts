/**
 * A gateway: MQTT ingress and the device link on this thread, the journal and the uplinks on the journal
 * thread, commands, an admin listener.
 *
 *   devices --MQTT/TLS--> MqttIngress ----append--> Pipeline ==thread==> GroupCommit -> SqliteJournal
 *   devices --gRPC SDK--> DeviceLinkServer -/                            Uplink per upstream <- journal -> backends (gRPC)
 *   backend Command --Uplink--> CommandCenter (commands.db) --DeviceRegistry--> the device's connection
 *
 * Start order: the settings that come from files (keys, ACL, certificates: a mistake stops the start with the
 * flag named), the journal (so nothing is accepted before it can be kept), MQTT, admin. Close in reverse, with
 * the journal last so that what was accepted is committed.
 */
import { EventEmitter } from 'node:events';
import { formatHostPort, type HostPort, systemClock, systemTimers } from '@fleetgate/core';
import {
  AdminHttpServer,
  loadTlsClient,
  loadTlsServer,
  loadVerifyingKey,
  type Logger,
  type LogLevel,
  RevocationList,
  silentLogger,
  TokenVerifier,
} from '@fleetgate/common';
import { DataAtRiskTracker } from './admin/data-at-risk.ts';
import { gatewayAdminRoutes } from './admin/routes.ts';
import { CommandCenter } from './commands/command-center.ts';
import { SqliteCommandStore } from './commands/command-store-sqlite.ts';
import { DeviceRegistry } from './commands/device-registry.ts';
import { DeviceLinkServer } from './device-link/device-link-server.ts';
import { Acl } from './ingress/acl.ts';
import { AnonymousAuth, TokenAuth } from './ingress/device-auth.ts';
import type { DeviceAuthenticator } from './ingress/device-authenticator.ts';
import { MqttIngress } from './ingress/mqtt-ingress.ts';
import { WS_PATH } from './ingress/mqtt-listeners.ts';
import { DEFAULT_UPSTREAM_NAME, validateGatewayOptions, type GatewayOptions, type UpstreamOptions } from './options.ts';
import { Pipeline } from './pipeline/pipeline.ts';
import type { PipelineSettings } from './pipeline/pipeline-protocol.ts';
import type { GatewayStats } from './stats.ts';
import { VERSION } from './version.ts';

export type { GatewayStats } from './stats.ts';

/** How often the journal's counters are sampled for the data-at-risk rates, besides every stats request. */
const RISK_SAMPLE_MS = 5000;

export interface GatewayStartOptions extends GatewayOptions {
  logger?: Logger;
  /** Level of the journal thread's logger (it cannot share this thread's logger object). */
  logLevel?: LogLevel;
}

export class Gateway extends EventEmitter<{ fatal: [Error] }> {
  private readonly startedAt = Date.now();
  private admin: AdminHttpServer | undefined;
  private ingress: MqttIngress | undefined;
  private deviceLink: DeviceLinkServer | undefined;
  private closing: Promise<void> | undefined;
  private failure: Error | undefined;
  private readonly risk: DataAtRiskTracker;
  private readonly riskTimer: NodeJS.Timeout;
  adminAddress: HostPort | undefined;

  private constructor(
    readonly options: GatewayOptions,
    private readonly pipeline: Pipeline,
    private readonly logger: Logger,
    private readonly revocations: RevocationList | undefined,
    private readonly commands: { registry: DeviceRegistry; center: CommandCenter; store: SqliteCommandStore },
  ) {
    super();
    // Attached right after the pipeline started: nothing the uplinks hear can come before these.
    pipeline.on('command', (command, upstream) => commands.center.fromBackend(command, upstream));
    pipeline.on('commandAck', (ack, upstream) => commands.center.backendAck(ack, upstream));
    pipeline.on('uplinkReady', (upstream) => commands.center.uplinkReady(upstream));
    this.risk = new DataAtRiskTracker(options.journalLimits);
    this.riskTimer = setInterval(() => void this.stats().catch(() => {}), RISK_SAMPLE_MS);
    this.riskTimer.unref();
    pipeline.on('fatal', (err) => {
      this.failure = err;
      this.logger.fatal({ err: err.message }, 'the journal thread failed');
      this.emit('fatal', err);
    });
  }

  static async start(options: GatewayStartOptions): Promise<Gateway> {
    validateGatewayOptions(options);
    const logger = options.logger ?? silentLogger;
    const revocations = options.revocationsFile ? new RevocationList(options.revocationsFile) : undefined;
    let store: SqliteCommandStore | undefined;
    try {
      const auth = await deviceAuthenticator(options, revocations);
      const acl = options.aclFile ? Acl.fromFile(options.aclFile) : new Acl();
      const tls = options.tls
        ? loadTlsServer(options.tls, { cert: '--tls-cert', key: '--tls-key', ca: '--tls-ca', clientAuth: '--tls-client-auth' })
        : undefined;
      const upstreams = options.upstreams.map(upstreamSettings);

      const registry = new DeviceRegistry();
      store = new SqliteCommandStore({ dir: options.dataDir, durability: options.durability });
      let pipeline: Pipeline | undefined;
      const center = new CommandCenter({
        store,
        registry,
        logger,
        upstream: { send: (frames, to) => pipeline?.sendUpstream(frames, to) },
      });
      pipeline = await Pipeline.start({
        gatewayId: options.gatewayId,
        version: VERSION,
        dataDir: options.dataDir,
        durability: options.durability,
        groupCommit: options.groupCommit,
        limits: options.journalLimits,
        ...(options.maxJournalFileBytes ? { maxFileBytes: options.maxJournalFileBytes } : {}),
        tailCacheBytes: options.tailCacheBytes,
        uplink: options.uplink,
        upstreams,
        routes: options.routes,
        forgetUpstreams: options.forgetUpstreams,
        logLevel: options.logLevel ?? (logger.level as LogLevel),
      });
      const gateway = new Gateway(options, pipeline, logger, revocations, { registry, center, store });
      try {
        gateway.ingress = await MqttIngress.start({
          listeners: {
            ...(options.mqtt ? { tcp: options.mqtt } : {}),
            ...(options.mqtts && tls ? { tls: { ...options.mqtts, material: tls } } : {}),
            ...(options.ws ? { ws: options.ws } : {}),
            ...(options.wss && tls ? { wss: { ...options.wss, material: tls } } : {}),
          },
          pipeline,
          auth,
          acl,
          maxPayloadBytes: options.maxPayloadBytes,
          maxUnackedPerConnection: options.maxUnackedPerConnection,
          maxConnections: options.maxConnections,
          maxSessionExpirySeconds: Math.ceil(options.maxSessionExpiryMs / 1000),
          ...(options.rateLimit ? { rateLimit: options.rateLimit } : {}),
          commands: { registry, center },
          logger,
        });
        if (options.deviceGrpc) {
          gateway.deviceLink = await DeviceLinkServer.start({
            listen: options.deviceGrpc,
            ...(tls ? { tls } : {}),
            auth,
            pipeline,
            commands: { registry, center },
            maxPayloadBytes: options.maxPayloadBytes,
            maxUnacked: options.maxUnackedPerConnection,
            maxConnections: options.maxConnections,
            ...(options.rateLimit ? { rateLimit: options.rateLimit } : {}),
            logger,
            clock: systemClock,
            timers: systemTimers,
          });
        }
        if (options.admin) {
          gateway.admin = new AdminHttpServer(gateway.adminRoutes(), logger);
          gateway.adminAddress = await gateway.admin.listen(options.admin);
        }
        gateway.watchRevocations(auth);
      } catch (err: unknown) {
        await gateway.close();
        throw err;
      }
      const { tcp, tls: tlsAddress, ws, wss } = gateway.mqttAddresses;
      logger.info(
        {
          gatewayId: options.gatewayId,
          version: VERSION,
          mqtt: tcp && formatHostPort(tcp),
          mqtts: tlsAddress && formatHostPort(tlsAddress),
          ws: ws && `${formatHostPort(ws)}${WS_PATH}`,
          wss: wss && `${formatHostPort(wss)}${WS_PATH}`,
          deviceGrpc: gateway.deviceLink && formatHostPort(gateway.deviceLink.address),
          auth: auth.kind,
          admin: gateway.adminAddress && formatHostPort(gateway.adminAddress),
          upstreams: upstreams.map(({ name, target, tls }) => `${name}=${target}${tls ? ' (TLS)' : ''}`),
          routes: options.routes.length,
          data: options.dataDir,
          durability: options.durability,
        },
        'gateway ready',
      );
      return gateway;
    } catch (err: unknown) {
      revocations?.close();
      store?.close();
      throw err;
    }
  }

  /** The device link's address, if it listens. */
  get deviceGrpcAddress(): HostPort | undefined {
    return this.deviceLink?.address;
  }

  get mqttAddresses(): { tcp?: HostPort; tls?: HostPort; ws?: HostPort; wss?: HostPort } {
    return this.ingress?.addresses ?? {};
  }

  /** The plain MQTT address, else the TLS one. */
  get mqttAddress(): HostPort {
    const { tcp, tls } = this.mqttAddresses;
    return (tcp ?? tls)!;
  }

  /** SIGHUP: re-reads the revocation list and the ACL file. A broken file keeps what was in force. */
  reload(): void {
    this.revocations?.reload();
    if (this.options.aclFile) {
      try {
        this.ingress?.setAcl(Acl.fromFile(this.options.aclFile));
        this.logger.info({ file: this.options.aclFile }, 'ACL reloaded');
      } catch (err: unknown) {
        this.logger.error({ err: (err as Error).message }, 'ACL not reloaded: the rules in force stay');
      }
    }
  }

  async stats(): Promise<GatewayStats> {
    const { journal, upstreams } = await this.pipeline.stats();
    const ingress = this.ingress!.stats();
    const now = Date.now();
    const { rows, payloadBytes, oldestTimeMs, appendedBytes, freedBytes } = journal;
    const deviceLink = this.deviceLink?.stats() ?? null;
    return {
      gatewayId: this.options.gatewayId,
      version: VERSION,
      uptimeSeconds: Math.round((now - this.startedAt) / 1000),
      devicesConnected: ingress.devicesConnected + (deviceLink?.devicesConnected ?? 0),
      journal: {
        ...journal,
        oldestUnackedAgeMs: oldestTimeMs === null ? null : Math.max(0, now - oldestTimeMs),
        appendDurations: this.pipeline.appendDurations(),
      },
      upstreams,
      dataAtRisk: this.risk.observe({ nowMs: now, rows, payloadBytes, oldestTimeMs, appendedBytes, freedBytes }),
      ingress,
      deviceLink,
      commands: this.commands.center.stats(),
    };
  }

  /** Stops accepting, commits what was accepted, stops the uplink, closes the journal. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.riskTimer);
      this.revocations?.close();
      await this.deviceLink?.close();
      await this.ingress?.close();
      this.commands.center.close();
      await this.pipeline.close(this.options.drainGraceMs);
      this.commands.store.close();
      await this.admin?.close();
      this.logger.info('gateway stopped');
    })();
    return this.closing;
  }

  /** A changed revocation list ends the connections whose token it now revokes. */
  private watchRevocations(auth: DeviceAuthenticator): void {
    if (!this.revocations || !(auth instanceof TokenAuth)) return;
    this.revocations.on('changed', (entries) => {
      const stillValid = (claims: Parameters<typeof auth.verifier.stillValid>[0]) => auth.verifier.stillValid(claims);
      const ended = (this.ingress?.endRevoked(stillValid) ?? 0) + (this.deviceLink?.endRevoked(stillValid) ?? 0);
      this.logger.info(
        { entries: entries.jtis.size + entries.subjects.size, connectionsEnded: ended },
        'revocation list reloaded',
      );
    });
    this.revocations.on('error', (err) =>
      this.logger.error({ err: err.message }, 'revocation list not reloaded: the last good one stays'),
    );
  }

  private adminRoutes() {
    return gatewayAdminRoutes({
      stats: () => this.stats(),
      condition: () => ({ ...(this.failure ? { failure: this.failure.message } : {}), closing: this.closing !== undefined }),
    });
  }
}

/** What the journal thread needs of an upstream: its addresses, token file and TLS material (read here, so a bad file stops the start). */
function upstreamSettings(upstream: UpstreamOptions, i: number): PipelineSettings['upstreams'][number] {
  // A lone upstream called "default" came from the flags: mistakes are named by flag.
  const fromFlags = upstream.name === DEFAULT_UPSTREAM_NAME && i === 0;
  const field = (key: string, flag: string) => (fromFlags ? flag : `upstreams[${i}].tls.${key}`);
  const tls = upstream.tls
    ? {
        ...loadTlsClient(upstream.tls, {
          ca: field('ca', '--upstream-ca'),
          cert: field('cert', '--upstream-cert'),
          key: field('key', '--upstream-key'),
        }),
        ...(upstream.tls.serverName ? { serverName: upstream.tls.serverName } : {}),
      }
    : undefined;
  return {
    name: upstream.name,
    target: upstream.addresses.join(','),
    ...(upstream.tokenFile ? { tokenFile: upstream.tokenFile } : {}),
    ...(tls ? { tls } : {}),
  };
}

async function deviceAuthenticator(
  options: GatewayOptions,
  revocations: RevocationList | undefined,
): Promise<DeviceAuthenticator> {
  if (!options.deviceKey) return new AnonymousAuth();
  const key = await loadVerifyingKey(options.deviceKey);
  return new TokenAuth(new TokenVerifier({ key, audience: options.deviceAudience, ...(revocations ? { revocations } : {}) }));
}
