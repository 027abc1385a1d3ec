/**
 * The part of the pipeline (pipeline/pipeline.ts) that device traffic needs: MQTT ingress and the device link
 * append records through these, and nothing else of the pipeline. `done` is the device's acknowledgement: it is
 * called once the journal thread says the record's commit returned (design.md, "The path of a message").
 */
import type { NewRecord } from '../journal/journal.ts';

export interface RecordAppender {
  /** Hands a record to the journal thread; `done` once it is durable, or with the reason it is not. */
  append(record: NewRecord, done: (err?: Error) => void): void;
  /** The journal thread is behind: hold the devices back (ingress stops reading their sockets) until it is not. */
  readonly congested: boolean;
}

/** What the device link needs besides: where a device's stream resumes (its Welcome, device.proto). */
export interface DeviceRecordAppender extends RecordAppender {
  /** The highest seq the journal holds for this device and epoch; 0 when none. */
  lastDeviceSeq(deviceId: string, epoch: string): Promise<number>;
}
