/**
 * @fleetgate/common: what the gateway and the backend share beyond @fleetgate/core: logging, tokens, TLS
 * files, listeners, the admin HTTP server, gRPC health, worker threads. Not for devices (it brings pino, jose
 * and lru-cache); the device SDK depends on @fleetgate/core only.
 */
export {
  AdminHttpServer,
  BadRequest,
  type JsonResponse,
  type RouteHandler,
  type RouteRequest,
  type RouteResponse,
  type Routes,
  type TextResponse,
} from './admin-http.ts';
export { closeServer, listen, ListenError } from './listen.ts';
export { createLogger, envLogLevel, silentLogger, type Logger, type LoggerOptions, type LogLevel } from './logger.ts';
export { startWorker, workerModule } from './worker.ts';
export {
  RpcClient,
  RpcServer,
  WorkerRpcError,
  type ErrorClasses,
  type RpcClientOptions,
  type RpcEvents,
  type RpcMethods,
  type RpcPort,
} from './worker-rpc.ts';
export {
  ColumnPacker,
  unpackColumns,
  type ColumnReader,
  type ColumnWriter,
  type PackedColumns,
  type RowCodec,
} from './column-packer.ts';
export * from './tokens/keys.ts';
export * from './tokens/revocation-list.ts';
export * from './tokens/token-verifier.ts';
export * from './tokens/tokens.ts';
export {
  loadTlsClient,
  loadTlsServer,
  type TlsClientFiles,
  type TlsClientMaterial,
  type TlsServerFiles,
  type TlsServerMaterial,
} from './tls.ts';
export { cspHash, inlineText } from './html.ts';
export {
  GrpcHealth,
  grpcServiceName,
  type GrpcServiceRegistry,
  type HealthImplementationLike,
  type HealthStatus,
} from './grpc-health.ts';
