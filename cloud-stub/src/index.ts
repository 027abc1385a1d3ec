export { Faults, type FaultsView } from './faults.ts';
export { CloudStub, DEFAULT_LIMITS, type CloudStats, type CloudStubOptions, type JetStreamBackend } from './cloud-stub.ts';
export { ThreadedSink } from './sink/threaded-sink.ts';
export { exportSqliteSink, readSqliteGaps, readSqliteSinkStats, SINK_FILE, SqliteSink } from './sink/sink-sqlite.ts';
export { JetStreamSink, type JetStreamSinkOptions } from './sink/sink-jetstream.ts';
export {
  CommandConflictError,
  InvalidGapError,
  InvalidRecordError,
  JetStreamStoreError,
  PublishError,
  SinkClosedError,
  SinkThreadError,
  StreamMessageError,
  StreamReadError,
} from './errors.ts';
export {
  decodeKey,
  decodeToken,
  encodeKey,
  encodeToken,
  jetStreamNames,
  type JetStreamNames,
} from './sink/sink-jetstream-names.ts';
export type {
  ExportedGap,
  ExportedRecord,
  GatewayStats,
  Sink,
  SinkBatch,
  SinkGap,
  SinkOutcome,
  SinkRecord,
  SinkStats,
} from './sink/sink.ts';
export { AnonymousGatewayAuth, TokenGatewayAuth, type GatewayAuth, type GatewayAuthResult } from './gateway-auth.ts';
