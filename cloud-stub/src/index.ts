export { AckGate } from './ack-gate.ts';
export { CloudStub, DEFAULT_LIMITS, type CloudStats, type CloudStubOptions, type Faults } from './cloud-stub.ts';
export { exportSqliteSink, readSqliteSinkStats, SINK_FILE, SqliteSink } from './sink/sink-sqlite.ts';
export type { ExportedRecord, GatewayStats, Sink, SinkBatch, SinkOutcome, SinkRecord, SinkStats } from './sink/sink.ts';
export { AnonymousGatewayAuth, TokenGatewayAuth, type GatewayAuth, type GatewayAuthResult } from './gateway-auth.ts';
