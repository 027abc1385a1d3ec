export { Faults, type FaultsView } from './faults.ts';
export { CloudStub, DEFAULT_LIMITS, type CloudStats, type CloudStubOptions } from './cloud-stub.ts';
export { ThreadedSink } from './sink/threaded-sink.ts';
export { exportSqliteSink, readSqliteGaps, readSqliteSinkStats, SINK_FILE, SqliteSink } from './sink/sink-sqlite.ts';
export type { ExportedGap, ExportedRecord, GatewayStats, Sink, SinkBatch, SinkGap, SinkOutcome, SinkRecord, SinkStats } from './sink/sink.ts';
export { AnonymousGatewayAuth, TokenGatewayAuth, type GatewayAuth, type GatewayAuthResult } from './gateway-auth.ts';
