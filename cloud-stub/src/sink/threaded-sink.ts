/**
 * A SqliteSink on a thread of its own (sink-thread.ts), so that the cloud-stub's event loop goes on reading and
 * decoding gateway streams while a commit waits for its fsync: the commit was the wait of every live batch queued
 * behind a replay. Batches cross the thread boundary packed: one ArrayBuffer of payloads, transferred, and
 * columns of the small fields (a payload decoded by grpc-js is a view into its whole message, which a plain
 * structured clone would copy whole, once per record).
 */
import { type Durability, FleetgateError } from '@fleetgate/core';
import {
  ColumnPacker,
  RpcClient,
  startWorker,
  unpackColumns,
  workerModule,
  type PackedColumns,
  type RowCodec,
} from '@fleetgate/common';
import type { ExportedGap, ExportedRecord, Sink, SinkBatch, SinkGap, SinkOutcome, SinkRecord, SinkStats } from './sink.ts';
import { exportSqliteSink, readSqliteGaps } from './sink-sqlite.ts';
import * as CLOUD_ERRORS from '../errors.ts';

/** Batches as columns (common/src/column-packer.ts), with every payload in one buffer. */
export interface PackedBatches {
  gatewayIds: string[];
  /** Records per batch. */
  counts: number[];
  records: PackedColumns;
}

/** The calls the sink thread serves (sink-thread.ts), over the worker RPC (common/src/worker-rpc.ts). */
export interface SinkThreadMethods {
  commit(packed: PackedBatches): Promise<SinkOutcome[]>;
  recordGap(gatewayId: string, gap: SinkGap): Promise<void>;
  lastSeq(gatewayId: string): Promise<number>;
  stats(): Promise<SinkStats>;
  close(): Promise<void>;
}

/** What the errors of the sink thread are re-created as here: every cloud-stub error class, and the basics. */
const SINK_ERRORS = { ...CLOUD_ERRORS, FleetgateError, RangeError, TypeError };

export class ThreadedSink implements Sink {
  private readonly rpc: RpcClient<SinkThreadMethods>;

  private constructor(
    private readonly dir: string,
    durability: Durability,
    private readonly worker = startWorker(workerModule(import.meta.url, 'sink-thread'), { dir, durability }, 'sink'),
  ) {
    this.rpc = new RpcClient<SinkThreadMethods>(worker, { errors: SINK_ERRORS });
    worker.on('error', (err) => this.rpc.fail(err));
    worker.on('exit', (code) => this.rpc.fail(new CLOUD_ERRORS.SinkThreadError(`the sink thread exited (code ${code})`)));
  }

  /** Starts the thread and waits until it has opened the sink (so that a broken sink fails the start). */
  static async open(dir: string, durability: Durability): Promise<ThreadedSink> {
    const sink = new ThreadedSink(dir, durability);
    await sink.rpc.call('stats', []);
    return sink;
  }

  async commit(batches: readonly SinkBatch[]): Promise<SinkOutcome[]> {
    const packed = pack(batches);
    return this.rpc.call('commit', [packed], [packed.records.payloads]);
  }

  async recordGap(gatewayId: string, gap: SinkGap): Promise<void> {
    await this.rpc.call('recordGap', [gatewayId, gap]);
  }

  async lastSeq(gatewayId: string): Promise<number> {
    return this.rpc.call('lastSeq', [gatewayId]);
  }

  async stats(): Promise<SinkStats> {
    return this.rpc.call('stats', []);
  }

  /** Read from the file by a connection of its own (WAL: readers never wait for the writer). */
  async *exportRecords(): AsyncIterable<ExportedRecord> {
    yield* exportSqliteSink(this.dir);
  }

  async exportGaps(): Promise<ExportedGap[]> {
    return readSqliteGaps(this.dir);
  }

  async close(): Promise<void> {
    if (!this.rpc.failure) await this.rpc.call('close', []);
    await this.worker.terminate();
  }
}

const RECORD_CODEC: RowCodec<SinkRecord> = {
  write: (r, to) => {
    to.number(r.seq);
    to.string(r.deviceId);
    to.string(r.stream);
    to.number(r.deviceSeq);
    to.number(r.deviceTimeMs);
    to.number(r.gatewayTimeMs);
    to.string(r.contentType);
    to.bytes(r.payload);
  },
  read: (from) => ({
    seq: from.number(),
    deviceId: from.string(),
    stream: from.string(),
    deviceSeq: from.number(),
    deviceTimeMs: from.number(),
    gatewayTimeMs: from.number(),
    contentType: from.string(),
    payload: from.bytes(),
  }),
};

export function pack(batches: readonly SinkBatch[]): PackedBatches {
  let bytes = 0;
  for (const b of batches) for (const r of b.records) bytes += r.payload.byteLength;
  // The exact size: one buffer, never grown.
  const packer = new ColumnPacker(RECORD_CODEC, bytes);
  for (const b of batches) for (const r of b.records) packer.add(r);
  return { gatewayIds: batches.map((b) => b.gatewayId), counts: batches.map((b) => b.records.length), records: packer.take() };
}

export function unpack(packed: PackedBatches): SinkBatch[] {
  const records = unpackColumns(RECORD_CODEC, packed.records);
  let at = 0;
  return packed.gatewayIds.map((gatewayId, b) => {
    const count = packed.counts[b]!;
    at += count;
    return { gatewayId, records: records.slice(at - count, at) };
  });
}
