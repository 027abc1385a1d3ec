/**
 * Records on their way from the MQTT thread to the journal thread, packed by column. The payloads are copied
 * once into one ArrayBuffer that is transferred, not cloned: postMessage of a Buffer would clone the whole
 * pool it is a view of (often 8 KiB or 64 KiB per message).
 */
import type { NewRecord } from '../journal/journal.ts';

export interface PackedRecords {
  count: number;
  /** deviceId, stream, contentType, deviceEpoch of each record, in turn. */
  strings: string[];
  /** deviceSeq, deviceTimeMs, gatewayTimeMs of each record, in turn. */
  numbers: Float64Array;
  /** Where each record's payload ends in `payloads`. */
  payloadEnds: Uint32Array;
  payloads: ArrayBuffer;
}

const INITIAL_CAPACITY = 64 * 1024;

export class RecordPacker {
  private strings: string[] = [];
  private numbers: number[] = [];
  private payloadEnds: number[] = [];
  private buffer: Buffer;
  private used = 0;

  constructor(private capacity = INITIAL_CAPACITY) {
    this.buffer = newBuffer(capacity);
  }

  get count(): number {
    return this.payloadEnds.length;
  }

  add(record: NewRecord): void {
    const size = record.payload.length;
    if (this.used + size > this.buffer.length) this.grow(this.used + size);
    record.payload.copy(this.buffer, this.used);
    this.used += size;
    this.payloadEnds.push(this.used);
    this.strings.push(record.deviceId, record.stream, record.contentType, record.deviceEpoch);
    this.numbers.push(record.deviceSeq, record.deviceTimeMs, record.gatewayTimeMs);
  }

  /** What was added since the last take, ready to post (list `payloads` as transferable); starts afresh. */
  take(): PackedRecords {
    const packed: PackedRecords = {
      count: this.payloadEnds.length,
      strings: this.strings,
      numbers: Float64Array.from(this.numbers),
      payloadEnds: Uint32Array.from(this.payloadEnds),
      payloads: this.buffer.buffer as ArrayBuffer,
    };
    this.strings = [];
    this.numbers = [];
    this.payloadEnds = [];
    // The next batch is likely the size of this one; transferring detaches the old buffer, so always a new one.
    this.capacity = Math.max(INITIAL_CAPACITY, this.used);
    this.buffer = newBuffer(this.capacity);
    this.used = 0;
    return packed;
  }

  private grow(needed: number): void {
    let capacity = this.buffer.length * 2;
    while (capacity < needed) capacity *= 2;
    const bigger = newBuffer(capacity);
    this.buffer.copy(bigger, 0, 0, this.used);
    this.buffer = bigger;
  }
}

/** The records of a packed batch; their payloads are views into `packed.payloads` (no copy). */
export function unpackRecords(packed: PackedRecords): NewRecord[] {
  const records: NewRecord[] = [];
  let start = 0;
  for (let i = 0; i < packed.count; i++) {
    const end = packed.payloadEnds[i]!;
    records.push({
      deviceId: packed.strings[4 * i]!,
      stream: packed.strings[4 * i + 1]!,
      contentType: packed.strings[4 * i + 2]!,
      deviceEpoch: packed.strings[4 * i + 3]!,
      deviceSeq: packed.numbers[3 * i]!,
      deviceTimeMs: packed.numbers[3 * i + 1]!,
      gatewayTimeMs: packed.numbers[3 * i + 2]!,
      payload: Buffer.from(packed.payloads, start, end - start),
    });
    start = end;
  }
  return records;
}

/** A Buffer over its own ArrayBuffer: never one from Node's shared pool, which must not be transferred. */
function newBuffer(size: number): Buffer {
  return Buffer.from(new ArrayBuffer(size));
}
