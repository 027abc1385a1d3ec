/**
 * The MQTT thread's handle on the journal thread (journal-thread.ts). Ingress calls append(record, done);
 * records are packed (packed-records.ts) and sent to the journal thread once per event-loop turn, one
 * transferred buffer for the whole turn, and `done` is called when their commit returned. Everything else is a
 * call of the worker RPC (common/src/worker-rpc.ts); errors come back as their own classes.
 */
import { EventEmitter } from 'node:events';
import { DurationHistogram, type HistogramSnapshot } from '@fleetgate/core';
import { RpcClient, startWorker, workerModule, type RpcPort } from '@fleetgate/common';
import type { Command, CommandAck, UplinkFrame } from '@fleetgate/protos';
import { type NewRecord } from '../journal/journal.ts';
import { RecordPacker } from './packed-records.ts';
import { JournalFullError, PIPELINE_ERRORS, PipelineError } from '../errors.ts';
import type { JournalThreadEvents, JournalThreadMethods, PipelineSettings, PipelineStats } from './pipeline-protocol.ts';

export type { PipelineSettings, PipelineStats } from './pipeline-protocol.ts';

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

/**
 * The journal thread's young generation. V8 grows it to 3 x 16 MB semi-spaces on 64-bit when an isolate allocates
 * fast, which the journal thread does under load (records unpacked, batches encoded) though little of it lives:
 * that was 36 MB of the gateway's RSS at 5,000 msg/s (bench memory: steady 190 -> 154 MB). At 4 MB it collects
 * more often, at no measurable cost to the e2e rate (bench e2e, same runs). The old generation keeps V8's default.
 */
const JOURNAL_THREAD_HEAP = { maxYoungGenerationSizeMb: 4 };

export class Pipeline extends EventEmitter<PipelineEvents> {
  private packer = new RecordPacker();
  private callbacks: Done[] = [];
  private flushScheduled = false;
  /** When the first record of this event-loop turn was appended (performance.now()). */
  private turnStartedAt = 0;
  /** Each record's time from append() to durable: the ingest stage of a message's path (GET /metrics). */
  private readonly appended = new DurationHistogram();
  /** The callbacks of each append sent and not answered yet. */
  private readonly inFlight = new Set<Done[]>();
  private inFlightRecords = 0;
  private failure: Error | undefined;
  private closing: Promise<void> | undefined;
  private readonly rpc: RpcClient<JournalThreadMethods, JournalThreadEvents>;
  private readonly opened: Promise<void>;

  /** `stop`: ends the journal thread once it closed (or failed). */
  private constructor(
    port: RpcPort,
    private readonly stop: () => Promise<unknown>,
  ) {
    super();
    let ready = () => {};
    this.opened = new Promise((resolve, reject) => {
      ready = resolve;
      this.once('fatal', reject);
    });
    this.rpc = new RpcClient<JournalThreadMethods, JournalThreadEvents>(port, {
      errors: PIPELINE_ERRORS,
      events: {
        ready: () => ready(),
        // Structured clone turned the payload Buffer into a plain Uint8Array.
        command: (command, upstream) => this.emit('command', { ...command, payload: Buffer.from(command.payload) }, upstream),
        commandAck: (ack, upstream) => this.emit('commandAck', ack, upstream),
        uplinkReady: (upstream) => this.emit('uplinkReady', upstream),
      },
      onFailure: (err) => this.die(err),
    });
  }

  /** Starts the journal thread; resolves once the journal is open and the uplinks started. */
  static start(settings: PipelineSettings): Promise<Pipeline> {
    const worker = startWorker(
      workerModule(import.meta.url, 'journal-thread-entry'),
      settings,
      'fleetgate-journal',
      JOURNAL_THREAD_HEAP,
    );
    const pipeline = new Pipeline(worker, () => worker.terminate());
    // A worker may throw what is not an Error (a value, a plain object): its message then says what it was.
    worker.on('error', (err: unknown) =>
      pipeline.threadGone(new PipelineError(`the journal thread failed: ${describeThrown(err)}`, { cause: err })),
    );
    worker.on('exit', (code) => pipeline.threadGone(new PipelineError(`the journal thread exited (code ${code})`)));
    return pipeline.ready();
  }

  /**
   * A pipeline whose journal thread answers on `port` (JournalThread.open on the other end of a MessageChannel,
   * in a test); `stop` ends it. Resolves once the journal is open.
   */
  static attach(port: RpcPort, stop: () => Promise<unknown>): Promise<Pipeline> {
    return new Pipeline(port, stop).ready();
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
      this.turnStartedAt = performance.now();
      setImmediate(this.flush);
    }
  }

  /** The highest seq journaled for this device-SDK device in this epoch (0 if none). */
  lastDeviceSeq(deviceId: string, epoch: string): Promise<number> {
    return this.rpc.call('lastDeviceSeq', [deviceId, epoch]);
  }

  /** Frames other than telemetry for the upstream `to` (all if absent); dropped where the uplink is not ready (Uplink.sendControl). */
  sendUpstream(frames: UplinkFrame[], to?: string): void {
    if (frames.length > 0 && !this.failure && !this.closing)
      this.rpc.notify('sendUpstream', to === undefined ? [frames] : [frames, to]);
  }

  /** Append -> durable (the journal thread's commit answered), per record, since start. */
  appendDurations(): HistogramSnapshot {
    return this.appended.snapshot();
  }

  stats(): Promise<PipelineStats> {
    return this.rpc.call('stats', []);
  }

  /**
   * Commits what was appended, waits up to `graceMs` for the batches in flight to be acked, stops the uplink,
   * checkpoints and closes the journal. Idempotent.
   */
  close(graceMs = 0): Promise<void> {
    this.closing ??= (async () => {
      this.flush();
      if (!this.failure) await this.rpc.call('close', [graceMs]);
      await this.stop();
    })();
    return this.closing;
  }

  private ready(): Promise<this> {
    return this.opened.then(() => this);
  }

  /** The records of this event-loop turn go to the journal thread: one call, their payloads in one transferred buffer. */
  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.packer.count === 0 || this.failure) return;
    const records = this.packer.take();
    const callbacks = this.callbacks;
    const startedAt = this.turnStartedAt;
    this.callbacks = [];
    this.inFlight.add(callbacks);
    this.inFlightRecords += callbacks.length;
    this.rpc.call('append', [records], [records.payloads]).then(
      () => {
        // Every record of the turn counts from the first one's append: a bound within one event-loop turn.
        this.appended.observe(performance.now() - startedAt, callbacks.length);
        this.settle(callbacks, undefined);
      },
      (err: unknown) => this.settle(callbacks, appendError(err)),
    );
  };

  private settle(callbacks: Done[], err: Error | undefined): void {
    if (!this.inFlight.delete(callbacks)) return; // settled already, by die()
    this.inFlightRecords -= callbacks.length;
    for (const done of callbacks) done(err);
  }

  /** The journal thread failed or exited: unless it was asked to (close, with nothing waiting), that is fatal. */
  private threadGone(err: Error): void {
    if (this.closing && this.rpc.pending === 0) return; // a requested exit
    this.rpc.fail(err);
  }

  /** The journal thread is gone: everything waiting on it fails, and the owner hears 'fatal'. */
  private die(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    for (const callbacks of this.inFlight) this.settle(callbacks, err);
    const waiting = this.callbacks;
    this.callbacks = [];
    for (const done of waiting) done(err);
    this.emit('fatal', err);
  }
}

/** A refused append keeps its JournalFullError (ingress tells devices so); any other failure says it was the commit. */
function appendError(err: unknown): Error {
  if (err instanceof JournalFullError) return err;
  return new PipelineError(`journal commit failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

function describeThrown(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  try {
    return JSON.stringify(err) ?? String(err);
  } catch {
    return String(err);
  }
}
