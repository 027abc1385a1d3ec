/** @fleetgate/simulators: the device fleet simulator (`fleetgate sim`) and what it is made of. */
export { simCommand, summary } from './cli.ts';
export { FleetgateProcess, portOf, spawnFleetgate, type LogLine } from './fleetgate-process.ts';
export { latencyHistogram, percentilesMs, recordMs, type Percentiles } from './latency.ts';
export { DeviceLedger } from './ledger.ts';
export { MIN_PAYLOAD_BYTES, payloadMaker, readPayloadHeader, type PayloadSpec } from './payload.ts';
export { newIdPrefix, runSimulation, type RunHooks, type SimSettings, type Targets } from './run.ts';
export { loadScenario, parseScenario, type FaultSpec, type PhaseSpec, type Protocol, type Scenario } from './scenario.ts';
export { ManagedStack, type StackSettings } from './stack.ts';
export { fetchGaps, fetchRecords, Verifier } from './verify.ts';
export type * from './result.ts';
export { startDemoDevices } from './demo-devices.ts';
