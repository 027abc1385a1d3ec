/**
 * A SqliteSink on a thread of its own (sink-thread.ts), so that the cloud-stub's event loop goes on reading and
 * decoding gateway streams while a commit waits for its fsync: the commit was the wait of every live batch queued
 * behind a replay. Batches cross the thread boundary packed: one ArrayBuffer of payloads, transferred, and
 * columns of the small fields (a payload decoded by grpc-js is a view into its whole message, which a plain
 * structured clone would copy whole, once per record).
 */
import type { Worker } from 'node:worker_threads';
import { type Durability, FleetgateError } from '@fleetgate/core';
import { startWorker, workerModule } from '@fleetgate/common';
import type { ExportedGap, ExportedRecord, Sink, SinkBatch, SinkGap, SinkOutcome, SinkStats } from './sink.ts';
import { exportSqliteSink, readSqliteGaps } from './sink-sqlite.ts';

/** Batches as columns, with every payload in one buffer. */
export interface PackedBatches {
  gatewayIds: string[];
  /** Records per batch. */
  counts: number[];
  seqs: Float64Array;
  deviceIds: string[];
  streams: string[];
  deviceSeqs: Float64Array;
  deviceTimes: Float64Array;
  gatewayTimes: Float64Array;
  contentTypes: string[];
  /** Record i's payload is payloads[ends[i - 1] .. ends[i]). */
  ends: Uint32Array;
  payloads: ArrayBuffer;
}

export type SinkRequest =
  | { op: 'commit'; id: number; packed: PackedBatches }
  | { op: 'recordGap'; id: number; gatewayId: string; gap: SinkGap }
  | { op: 'lastSeq'; id: number; gatewayId: string }
  | { op: 'stats'; id: number }
  | { op: 'close'; id: number };

export type SinkReply =
  { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string } | { id: 0; ok: false; fatal: string };

export class SinkThreadError extends FleetgateError {
  override name = 'SinkThreadError';
}

export class ThreadedSink implements Sink {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>();
  private failure: Error | undefined;

  private constructor(
    private readonly dir: string,
    durability: Durability,
  ) {
    this.worker = startWorker(workerModule(import.meta.url, 'sink-thread'), { dir, durability }, 'sink');
    this.worker.on('message', (reply: SinkReply) => {
      if ('fatal' in reply) return this.fail(new SinkThreadError(reply.fatal));
      const waiting = this.pending.get(reply.id);
      if (!waiting) return;
      this.pending.delete(reply.id);
      if (reply.ok) waiting.resolve(reply.value);
      else waiting.reject(new SinkThreadError(reply.error));
    });
    this.worker.on('error', (err) => this.fail(err));
    this.worker.on('exit', (code) => this.fail(new SinkThreadError(`the sink thread exited (code ${code})`)));
  }

  /** Starts the thread and waits until it has opened the sink (so that a broken sink fails the start). */
  static async open(dir: string, durability: Durability): Promise<ThreadedSink> {
    const sink = new ThreadedSink(dir, durability);
    await sink.request({ op: 'stats', id: 0 });
    return sink;
  }

  async commit(batches: readonly SinkBatch[]): Promise<SinkOutcome[]> {
    const packed = pack(batches);
    return (await this.request({ op: 'commit', id: 0, packed }, [packed.payloads])) as SinkOutcome[];
  }

  async recordGap(gatewayId: string, gap: SinkGap): Promise<void> {
    await this.request({ op: 'recordGap', id: 0, gatewayId, gap });
  }

  async lastSeq(gatewayId: string): Promise<number> {
    return (await this.request({ op: 'lastSeq', id: 0, gatewayId })) as number;
  }

  async stats(): Promise<SinkStats> {
    return (await this.request({ op: 'stats', id: 0 })) as SinkStats;
  }

  /** Read from the file by a connection of its own (WAL: readers never wait for the writer). */
  async *exportRecords(): AsyncIterable<ExportedRecord> {
    yield* exportSqliteSink(this.dir);
  }

  async exportGaps(): Promise<ExportedGap[]> {
    return readSqliteGaps(this.dir);
  }

  async close(): Promise<void> {
    if (!this.failure) await this.request({ op: 'close', id: 0 });
    await this.worker.terminate();
  }

  private request(message: SinkRequest, transfer: ArrayBuffer[] = []): Promise<unknown> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...message, id }, transfer);
    });
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const waiting of this.pending.values()) waiting.reject(this.failure);
    this.pending.clear();
  }
}

export function pack(batches: readonly SinkBatch[]): PackedBatches {
  let n = 0;
  let bytes = 0;
  for (const b of batches) {
    n += b.records.length;
    for (const r of b.records) bytes += r.payload.byteLength;
  }
  const packed: PackedBatches = {
    gatewayIds: batches.map((b) => b.gatewayId),
    counts: batches.map((b) => b.records.length),
    seqs: new Float64Array(n),
    deviceIds: [],
    streams: [],
    deviceSeqs: new Float64Array(n),
    deviceTimes: new Float64Array(n),
    gatewayTimes: new Float64Array(n),
    contentTypes: [],
    ends: new Uint32Array(n),
    payloads: new ArrayBuffer(bytes),
  };
  const payloads = new Uint8Array(packed.payloads);
  let i = 0;
  let at = 0;
  for (const b of batches) {
    for (const r of b.records) {
      packed.seqs[i] = r.seq;
      packed.deviceIds.push(r.deviceId);
      packed.streams.push(r.stream);
      packed.deviceSeqs[i] = r.deviceSeq;
      packed.deviceTimes[i] = r.deviceTimeMs;
      packed.gatewayTimes[i] = r.gatewayTimeMs;
      packed.contentTypes.push(r.contentType);
      payloads.set(r.payload, at);
      at += r.payload.byteLength;
      packed.ends[i] = at;
      i++;
    }
  }
  return packed;
}

export function unpack(packed: PackedBatches): SinkBatch[] {
  const payloads = new Uint8Array(packed.payloads);
  const out: SinkBatch[] = [];
  let i = 0;
  for (let b = 0; b < packed.gatewayIds.length; b++) {
    const records = [];
    for (let k = 0; k < packed.counts[b]!; k++, i++) {
      records.push({
        seq: packed.seqs[i]!,
        deviceId: packed.deviceIds[i]!,
        stream: packed.streams[i]!,
        deviceSeq: packed.deviceSeqs[i]!,
        deviceTimeMs: packed.deviceTimes[i]!,
        gatewayTimeMs: packed.gatewayTimes[i]!,
        contentType: packed.contentTypes[i]!,
        payload: payloads.subarray(i === 0 ? 0 : packed.ends[i - 1]!, packed.ends[i]!),
      });
    }
    out.push({ gatewayId: packed.gatewayIds[b]!, records });
  }
  return out;
}
