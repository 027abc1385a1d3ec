/**
 * The cloud-stub: a real reference backend for fleetgate. It terminates gateways' uplink streams (grpc-js),
 * commits their batches to a sink with dedupe, acks only what the sink committed, and answers "what arrived"
 * through its admin API and `fleetgate cloud export`. Its gRPC listener also answers grpc.health.v1: SERVING
 * (for "" and fleetgate.v1.Uplink) once bound, NOT_SERVING from the start of close().
 */
import { Server, ServerCredentials, status } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { connect as connectNats, type NatsConnection } from 'nats';
import { type Durability, formatHostPort, type HostPort } from '@fleetgate/core';
import {
  AdminHttpServer,
  BadRequest,
  GrpcHealth,
  grpcServiceName,
  ListenError,
  type Logger,
  type RevocationList,
  silentLogger,
  type TlsServerMaterial,
} from '@fleetgate/common';
import { UplinkService, type Limits } from '@fleetgate/protos';
import { Faults, type FaultsView } from './faults.ts';
import { CommitQueue, type CommitQueueStats } from './commit-queue.ts';
import { CommandRouter } from './commands/command-router.ts';
import { SqliteCloudCommandStore } from './commands/command-store-sqlite.ts';
import type { CloudCommand, CloudCommandStore } from './commands/command-store.ts';
import { JetStreamCommandStore } from './commands/command-store-jetstream.ts';
import { JetStreamSink } from './sink/sink-jetstream.ts';
import { AnonymousGatewayAuth, TokenGatewayAuth, type GatewayAuth } from './gateway-auth.ts';
import { ThreadedSink } from './sink/threaded-sink.ts';
import type { ExportedRecord, Sink, SinkStats } from './sink/sink.ts';
import { SessionRegistry, UplinkSession } from './uplink-session.ts';

export interface CloudStubOptions {
  /** The gRPC listener for Uplink.Connect. */
  listen: HostPort;
  /** The admin HTTP listener; none if absent. */
  admin?: HostPort;
  dataDir: string;
  durability: Durability;
  /** What the stub tells gateways in Welcome. */
  limits?: Partial<Limits>;
  /** How gateways prove who they are; anonymous (trust Hello, labs only) if absent. */
  auth?: GatewayAuth;
  /** TLS on the gRPC listener; mTLS when clientAuth. Plain if absent. */
  tls?: TlsServerMaterial;
  logger?: Logger;
  /**
   * Where records and commands live: SQLite files in dataDir (the default), or a NATS JetStream cluster that
   * several replicas share (records in a stream, commands and device locations in KV buckets).
   */
  backend?: JetStreamBackend;
}

export interface JetStreamBackend {
  kind: 'jetstream';
  servers: string[];
  /** Replicas of the stream and buckets when created; default 3 on a cluster of 3 or more, else 1. */
  replicas?: number;
  /** Stream name (default FLEETGATE); the subjects and buckets derive from it. */
  stream?: string;
}

export interface CloudStats extends SinkStats {
  /** Gateways with an open uplink stream. */
  sessions: number;
  auth: 'token' | 'anonymous';
  commits: CommitQueueStats;
  faults: FaultsView;
}

/** No opinion on batch sizes; credit for 16 batches in flight per gateway, topped up as they commit. */
export const DEFAULT_LIMITS: Limits = { maxBatchRecords: 0, maxBatchBytes: 0, maxBatchesInFlight: 16 };

export class CloudStub {
  readonly faults = new Faults();
  private readonly registry = new SessionRegistry();
  private readonly queue: CommitQueue;
  private readonly server: Server;
  private readonly health = new GrpcHealth(new HealthImplementation(), [grpcServiceName(UplinkService)]);
  private adminServer: AdminHttpServer | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    readonly sink: Sink,
    private readonly logger: Logger,
    limits: Limits,
    private readonly auth: GatewayAuth,
    private readonly commands: { store: CloudCommandStore; router: CommandRouter; connection?: NatsConnection },
  ) {
    this.queue = new CommitQueue(sink);
    this.server = new Server({ 'grpc.max_receive_message_length': 64 << 20 });
    this.server.addService(UplinkService, {
      connect: (call: ConstructorParameters<typeof UplinkSession>[0]) =>
        new UplinkSession(call, {
          sink,
          queue: this.queue,
          registry: this.registry,
          limits,
          logger,
          faults: this.faults,
          auth,
          router: commands.router,
        }),
    });
    this.health.addTo(this.server);
    const revocations: RevocationList | undefined = auth instanceof TokenGatewayAuth ? auth.verifier.revocations : undefined;
    revocations?.on('changed', () => {
      const ended = this.registry.endInvalid((claims) => auth.stillValid(claims));
      this.logger.info({ sessionsEnded: ended }, 'revocation list reloaded');
    });
    revocations?.on('error', (err) =>
      this.logger.error({ err: err.message }, 'revocation list not reloaded: the last good one stays'),
    );
  }

  /** The gRPC address actually bound (port 0 resolved). */
  address!: HostPort;
  /** The admin address actually bound, if any. */
  adminAddress: HostPort | undefined;

  static async start(options: CloudStubOptions): Promise<CloudStub> {
    const logger = options.logger ?? silentLogger;
    const auth = options.auth ?? new AnonymousGatewayAuth();
    const { sink, commands } = options.backend ? await openJetStream(options.backend, logger) : await openSqlite(options);
    const stub = new CloudStub(sink, logger, { ...DEFAULT_LIMITS, ...options.limits }, auth, commands);
    try {
      stub.address = await stub.bind(options.listen, options.tls);
      stub.health.serving();
      if (options.admin) {
        stub.adminServer = new AdminHttpServer(stub.adminRoutes(), logger);
        stub.adminAddress = await stub.adminServer.listen(options.admin);
      }
    } catch (err: unknown) {
      await stub.close();
      throw err;
    }
    logger.info(
      {
        listen: formatHostPort(stub.address),
        tls: options.tls ? (options.tls.clientAuth ? 'mtls' : 'tls') : 'off',
        auth: auth.kind,
        admin: stub.adminAddress && formatHostPort(stub.adminAddress),
        data: options.backend ? undefined : options.dataDir,
        sink: options.backend ? `jetstream ${options.backend.servers.join(',')}` : 'sqlite',
      },
      'cloud-stub ready',
    );
    return stub;
  }

  async stats(): Promise<CloudStats> {
    return {
      ...(await this.sink.stats()),
      sessions: this.registry.size,
      auth: this.auth.kind,
      commits: this.queue.stats(),
      faults: this.faults.view(),
    };
  }

  /** Ends every stream (UNAVAILABLE, so gateways retry elsewhere or later), stops listening, closes the sink. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.auth instanceof TokenGatewayAuth) this.auth.verifier.revocations?.close();
      this.health.close();
      this.registry.endAll(status.UNAVAILABLE, 'the cloud-stub is shutting down');
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => this.server.forceShutdown(), 2000);
        this.server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      await this.adminServer?.close();
      this.commands.router.close();
      await this.commands.store.close();
      await this.sink.close();
      await this.commands.connection?.drain();
      this.logger.info('cloud-stub stopped');
    })();
    return this.closing;
  }

  private bind(address: HostPort, tls: TlsServerMaterial | undefined): Promise<HostPort> {
    const credentials = tls
      ? ServerCredentials.createSsl(tls.ca ?? null, [{ private_key: tls.key, cert_chain: tls.cert }], tls.clientAuth)
      : ServerCredentials.createInsecure();
    return new Promise((resolve, reject) => {
      this.server.bindAsync(formatHostPort(address), credentials, (err, port) => {
        if (err)
          reject(
            new ListenError(`gRPC listener (--listen) cannot listen on ${formatHostPort(address)}: ${err.message}`, {
              cause: err,
            }),
          );
        else resolve({ host: address.host, port });
      });
    });
  }

  private adminRoutes() {
    return {
      'GET /healthz': () => ({ status: 200, body: { status: 'ok' } }),
      'GET /v1/stats': async () => ({ status: 200, body: await this.stats() }),
      // What arrived, for verifiers such as `fleetgate sim`: NDJSON in commit order, as `fleetgate cloud export`.
      'GET /v1/records': ({ query }: { query: URLSearchParams }) => ({
        status: 200 as const,
        lines: selectRecords(this.sink.exportRecords(), query),
      }),
      'GET /v1/gaps': async ({ query }: { query: URLSearchParams }) => {
        const gateway = query.get('gateway');
        const gaps = await this.sink.exportGaps();
        return { status: 200, body: gateway === null ? gaps : gaps.filter((g) => g.gatewayId === gateway) };
      },
      'POST /v1/commands': async ({ body }: { body: unknown }) => {
        const { deviceId, name, payload = null, ttlMs = 60_000 } = (body ?? {}) as Record<string, unknown>;
        if (typeof deviceId !== 'string' || typeof name !== 'string')
          throw new BadRequest('expected {"deviceId": "...", "name": "...", "payload": any JSON, "ttlMs": number}');
        if (typeof ttlMs !== 'number' || !Number.isInteger(ttlMs) || ttlMs < 1 || ttlMs > MAX_TTL_MS)
          throw new BadRequest(`ttlMs must be an integer from 1 to ${MAX_TTL_MS}`);
        try {
          const command = await this.commands.router.create({
            deviceId,
            name,
            payload: Buffer.from(JSON.stringify(payload)),
            ttlMs,
          });
          return { status: 201, body: commandView(command) };
        } catch (err: unknown) {
          // A bad id is the caller's; a store that fails is ours (500).
          if (err instanceof TypeError) throw new BadRequest(err.message);
          throw err;
        }
      },
      'GET /v1/commands/:id': async ({ params }: { params: Record<string, string> }) => {
        const command = await this.commands.router.get(params.id!);
        return command
          ? { status: 200, body: commandView(command) }
          : { status: 404, body: { error: `no command ${params.id}` } };
      },
      'GET /v1/faults': () => ({ status: 200, body: this.faults.view() }),
      'POST /v1/faults': ({ body }: { body: unknown }) => {
        const { holdAcks, rejectPayloads, ...unknown } = (body ?? {}) as Partial<FaultsView>;
        const extra = Object.keys(unknown);
        if (extra.length > 0) throw new BadRequest(`unknown fault "${extra[0]}": expected holdAcks, rejectPayloads`);
        if (holdAcks !== undefined && typeof holdAcks !== 'boolean') throw new BadRequest('holdAcks must be true or false');
        if (
          rejectPayloads !== undefined &&
          rejectPayloads !== null &&
          (typeof rejectPayloads !== 'string' || rejectPayloads === '')
        ) {
          throw new BadRequest('rejectPayloads must be a non-empty string, or null for none');
        }
        if (holdAcks === true) this.faults.hold();
        if (holdAcks === false) this.faults.release();
        if (rejectPayloads !== undefined) this.faults.rejectPayloads(rejectPayloads);
        this.logger.warn(this.faults.view(), 'fault injection changed');
        return { status: 200, body: this.faults.view() };
      },
    };
  }
}

const MAX_TTL_MS = 30 * 24 * 3600 * 1000;

/** A command as the admin API shows it: payload and result as JSON when they are JSON, else as text. */
export function commandView(c: CloudCommand) {
  return {
    commandId: c.commandId,
    deviceId: c.deviceId,
    name: c.name,
    payload: decode(c.payload),
    status: c.state,
    result: c.result.length > 0 ? decode(c.result) : null,
    message: c.message || null,
    gatewayId: c.gatewayId,
    createdAt: new Date(c.createdAtMs).toISOString(),
    updatedAt: new Date(c.updatedAtMs).toISOString(),
    expiresAt: new Date(c.expiresAtMs).toISOString(),
  };
}

function decode(bytes: Buffer): unknown {
  const text = bytes.toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** `?gateway=ID` keeps one gateway's records, `?devicePrefix=P` the devices whose id starts with P. */
async function* selectRecords(records: AsyncIterable<ExportedRecord>, query: URLSearchParams): AsyncIterable<ExportedRecord> {
  const gateway = query.get('gateway');
  const prefix = query.get('devicePrefix') ?? '';
  for await (const record of records) {
    if (gateway !== null && record.gatewayId !== gateway) continue;
    if (!record.deviceId.startsWith(prefix)) continue;
    yield record;
  }
}

async function openSqlite(options: CloudStubOptions) {
  const sink = await ThreadedSink.open(options.dataDir, options.durability);
  const store = new SqliteCloudCommandStore({ dir: options.dataDir, durability: options.durability });
  return { sink, commands: { store, router: new CommandRouter(store, options.logger ?? silentLogger) } };
}

/** The stream sink, and the command store and bus on a connection of their own (so that a slow commit never delays a command). */
async function openJetStream(backend: JetStreamBackend, logger: Logger) {
  const sink = await JetStreamSink.open({
    servers: backend.servers,
    ...(backend.stream ? { stream: backend.stream } : {}),
    ...(backend.replicas ? { replicas: backend.replicas } : {}),
  });
  try {
    const connection = await connectNats({
      servers: backend.servers,
      name: 'fleetgate-cloud-stub-commands',
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
    });
    try {
      const store = await JetStreamCommandStore.open(connection, {
        prefix: (backend.stream ?? 'FLEETGATE').toLowerCase(),
        replicas: sink.replicas,
      });
      return { sink, commands: { store, router: new CommandRouter(store, logger, store), connection } };
    } catch (err: unknown) {
      await connection.close();
      throw err;
    }
  } catch (err: unknown) {
    await sink.close();
    throw err;
  }
}
