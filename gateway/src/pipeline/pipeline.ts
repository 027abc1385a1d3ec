/**
 * The MQTT thread's handle on the journal thread. Ingress calls append(record, done); records are packed and
 * posted to the journal thread once per event-loop turn, and `done` is called when their commit returned.
 */
import { EventEmitter } from 'node:events';
import type { Worker } from 'node:worker_threads';
import { FleetgateError } from '@fleetgate/core';
import { startWorker, workerModule } from '@fleetgate/common';
import type { Command, CommandAck, UplinkFrame } from '@fleetgate/protos';
import { JournalFullError, type NewRecord } from '../journal/journal.ts';
import { RecordPacker } from './packed-records.ts';
import type { FromWorker, PipelineSettings, PipelineStats, ToWorker } from './pipeline-protocol.ts';

export type { PipelineSettings, PipelineStats } from './pipeline-protocol.ts';

export class PipelineError extends FleetgateError {
  override name = 'PipelineError';
}

type Done = (err?: Error) => void;

/** Records posted to the journal thread and not yet committed above which the pipeline says it is congested. */
const CONGESTION_RECORDS = 50_000;

export interface PipelineEvents {
  fatal: [Error];
  /** A command from the upstream named second (its payload a Buffer again). */
  command: [Command, string];
  commandAck: [CommandAck, string];
  /** The uplink to this upstream became ready. */
  uplinkReady: [string];
}

export class Pipeline extends EventEmitter<PipelineEvents> {
  private packer = new RecordPacker();
  private callbacks: Done[] = [];
  private flushScheduled = false;
  private nextId = 1;
  private readonly pendingAppends = new Map<number, Done[]>();
  private readonly pendingRequests = new Map<number, { resolve: (message: FromWorker) => void; reject: (err: Error) => void }>();
  private inFlightRecords = 0;
  private failure: Error | undefined;
  private closing: Promise<void> | undefined;

  private constructor(private readonly worker: Worker) {
    super();
    worker.on('message', (message: FromWorker) => this.onMessage(message));
    worker.on('error', (err) => this.die(new PipelineError(`the journal thread failed: ${err.message}`, { cause: err })));
    worker.on('exit', (code) => this.die(new PipelineError(`the journal thread exited (code ${code})`)));
  }

  /** Starts the journal thread; resolves once the journal is open and the uplink started. */
  static start(settings: PipelineSettings): Promise<Pipeline> {
    const worker = startWorker(workerModule(import.meta.url, 'pipeline-worker'), settings, 'fleetgate-journal');
    const pipeline = new Pipeline(worker);
    return new Promise((resolve, reject) => {
      const onReady = (message: FromWorker) => {
        if (message.type === 'ready') {
          pipeline.off('fatal', reject);
          resolve(pipeline);
        } else if (message.type === 'fatal') {
          reject(new PipelineError(message.error));
        }
      };
      worker.once('message', onReady);
      pipeline.once('fatal', reject);
    });
  }

  /** True while the journal thread is far behind: ingress should make even QoS 0 publishers wait. */
  get congested(): boolean {
    return this.inFlightRecords > CONGESTION_RECORDS;
  }

  /** Queues a record for the journal; `done` is called once it is durable, or with the reason it is not. */
  append(record: NewRecord, done: Done): void {
    if (this.failure || this.closing) return done(this.failure ?? new PipelineError('the gateway is shutting down'));
    this.packer.add(record);
    this.callbacks.push(done);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  /** The highest seq journaled for this device-SDK device in this epoch (0 if none). */
  lastDeviceSeq(deviceId: string, epoch: string): Promise<number> {
    return this.request({ type: 'last-device-seq', id: 0, deviceId, epoch }).then((message) =>
      message.type === 'last-device-seq' ? message.seq : 0,
    );
  }

  /** Frames other than telemetry for the upstream `to` (all if absent); dropped where the uplink is not ready (Uplink.sendControl). */
  sendUpstream(frames: UplinkFrame[], to?: string): void {
    if (frames.length > 0 && !this.failure && !this.closing)
      this.post({ type: 'upstream', frames, ...(to === undefined ? {} : { to }) });
  }

  stats(): Promise<PipelineStats> {
    return this.request({ type: 'stats', id: 0 }).then((message) => {
      if (message.type !== 'stats') throw new PipelineError(`unexpected answer ${message.type}`);
      return message.stats;
    });
  }

  /**
   * Commits what was appended, waits up to `graceMs` for the batches in flight to be acked, stops the uplink,
   * checkpoints and closes the journal. Idempotent.
   */
  close(graceMs = 0): Promise<void> {
    this.closing ??= (async () => {
      this.flush();
      if (!this.failure) await this.request({ type: 'close', id: 0, graceMs });
      await this.worker.terminate();
    })();
    return this.closing;
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.packer.count === 0 || this.failure) return;
    const id = this.nextId++;
    const records = this.packer.take();
    this.pendingAppends.set(id, this.callbacks);
    this.inFlightRecords += this.callbacks.length;
    this.callbacks = [];
    this.post({ type: 'append', id, records }, [records.payloads]);
  };

  private request(message: Extract<ToWorker, { id: number }>): Promise<FromWorker> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pendingRequests.set(id, { resolve, reject });
      this.post({ ...message, id });
    });
  }

  private post(message: ToWorker, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(message, transfer);
  }

  private onMessage(message: FromWorker): void {
    switch (message.type) {
      case 'appended': {
        const callbacks = this.pendingAppends.get(message.id) ?? [];
        this.pendingAppends.delete(message.id);
        this.inFlightRecords -= callbacks.length;
        const err =
          message.full !== undefined
            ? new JournalFullError(message.full)
            : message.error === undefined
              ? undefined
              : new PipelineError(`journal commit failed: ${message.error}`);
        for (const done of callbacks) done(err);
        return;
      }
      case 'command':
        // Structured clone turned the payload Buffer into a plain Uint8Array.
        return void this.emit('command', { ...message.command, payload: Buffer.from(message.command.payload) }, message.upstream);
      case 'command-ack':
        return void this.emit('commandAck', message.ack, message.upstream);
      case 'uplink-ready':
        return void this.emit('uplinkReady', message.upstream);
      case 'stats':
      case 'last-device-seq':
      case 'closed': {
        const request = this.pendingRequests.get(message.id);
        this.pendingRequests.delete(message.id);
        request?.resolve(message);
        return;
      }
      case 'fatal':
        return this.die(new PipelineError(message.error));
      case 'ready':
        return;
    }
  }

  /** The journal thread is gone: everything waiting on it fails, and the owner hears 'fatal'. */
  private die(err: Error): void {
    if (this.failure) return;
    if (this.closing && this.pendingRequests.size === 0) return; // a requested exit
    this.failure = err;
    const waiting = [...this.pendingAppends.values()].flat().concat(this.callbacks);
    this.pendingAppends.clear();
    this.callbacks = [];
    for (const done of waiting) done(err);
    for (const request of this.pendingRequests.values()) request.reject(err);
    this.pendingRequests.clear();
    this.emit('fatal', err);
  }
}
