/**
 * grpc.health.v1 on a gRPC listener (https://github.com/grpc/grpc/blob/master/doc/health-checking.md): SERVING
 * for "" (the whole server, by the protocol's convention) and for each named service while the listener is
 * open, NOT_SERVING once it closes. The service itself is grpc-health-check's HealthImplementation (gRFC L106),
 * which the servers depend on and pass in: common stays free of gRPC dependencies, so it is described here by
 * the few methods used.
 *
 * Closing also ends the Watch streams, right after they were told NOT_SERVING: a Watch never ends by itself
 * (clients that do health checking keep one open for good), and a graceful grpc-js shutdown (tryShutdown)
 * waits for every open call, so one watcher would hold the shutdown until it is forced.
 */

export type HealthStatus = 'SERVING' | 'NOT_SERVING';

/** grpc-health-check's HealthImplementation, as far as it is used here. */
export interface HealthImplementationLike {
  setStatus(service: string, status: HealthStatus): void;
  addToServer(server: GrpcServiceRegistry): void;
}

/** A grpc-js Server, as far as adding a service goes. */
export interface GrpcServiceRegistry {
  addService(definition: object, implementation: Record<string, (...args: never[]) => unknown>): void;
}

/** A Watch call (a grpc-js ServerWritableStream), as far as ending it goes. */
interface WatchCall {
  on(event: 'cancelled' | 'finish', listener: () => void): unknown;
  emit(event: 'error', error: Error & { code: number; details: string }): boolean;
}

/** grpc status UNAVAILABLE: what a client retries elsewhere or later. */
const UNAVAILABLE = 14;

/** The fully qualified name of a generated grpc-js service ("fleetgate.v1.Uplink"), from one of its method paths. */
export function grpcServiceName(definition: Record<string, { path: string }>): string {
  const path = Object.values(definition)[0]?.path ?? '';
  const name = path.split('/')[1];
  if (!name) throw new Error(`not a gRPC service definition (method path "${path}")`);
  return name;
}

export class GrpcHealth {
  private readonly watches = new Set<WatchCall>();
  private closed = false;

  /** `services`: the names served besides "" (the whole server). NOT_SERVING until serving() is called. */
  constructor(
    private readonly health: HealthImplementationLike,
    private readonly services: readonly string[],
  ) {
    this.set('NOT_SERVING');
  }

  /** Adds grpc.health.v1.Health to `server` (before it is bound). */
  addTo(server: GrpcServiceRegistry): void {
    this.health.addToServer({
      addService: (definition, implementation) => {
        const watch = implementation['watch'] as ((call: WatchCall) => unknown) | undefined;
        server.addService(
          definition,
          watch ? { ...implementation, watch: (call: WatchCall) => this.track(call, watch) } : implementation,
        );
      },
    });
  }

  serving(): void {
    if (!this.closed) this.set('SERVING');
  }

  /** NOT_SERVING for good, and every Watch ended (UNAVAILABLE). Call before shutting the server down. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.set('NOT_SERVING');
    for (const call of this.watches) end(call);
    this.watches.clear();
  }

  private track(call: WatchCall, watch: (call: WatchCall) => unknown): void {
    watch(call);
    // A Watch that came in as the server was closing has had its NOT_SERVING: end it at once.
    if (this.closed) return end(call);
    this.watches.add(call);
    const forget = () => this.watches.delete(call);
    call.on('cancelled', forget);
    call.on('finish', forget);
  }

  private set(status: HealthStatus): void {
    for (const service of ['', ...this.services]) this.health.setStatus(service, status);
  }
}

function end(call: WatchCall): void {
  const details = 'the server is shutting down';
  call.emit('error', Object.assign(new Error(details), { code: UNAVAILABLE, details }));
}
