/**
 * Records on their way from the MQTT thread to the journal thread, packed by column (common/src/column-packer.ts):
 * the payloads copied once into one ArrayBuffer that is transferred, not cloned, since postMessage of a Buffer
 * would clone the whole pool it is a view of (often 8 KiB or 64 KiB per message).
 */
import { ColumnPacker, unpackColumns, type PackedColumns, type RowCodec } from '@fleetgate/common';
import type { NewRecord } from '../journal/journal.ts';

/** A batch of records: per record, deviceId, stream, contentType, deviceEpoch; deviceSeq, deviceTimeMs, gatewayTimeMs; the payload. */
export type PackedRecords = PackedColumns;

const RECORD_CODEC: RowCodec<NewRecord> = {
  write: (r, to) => {
    to.string(r.deviceId);
    to.string(r.stream);
    to.string(r.contentType);
    to.string(r.deviceEpoch);
    to.number(r.deviceSeq);
    to.number(r.deviceTimeMs);
    to.number(r.gatewayTimeMs);
    to.bytes(r.payload);
  },
  read: (from) => ({
    deviceId: from.string(),
    stream: from.string(),
    contentType: from.string(),
    deviceEpoch: from.string(),
    deviceSeq: from.number(),
    deviceTimeMs: from.number(),
    gatewayTimeMs: from.number(),
    payload: from.bytes(),
  }),
};

/** Collects records, then hands them out packed (take: post it with `payloads` in the transfer list). */
export class RecordPacker extends ColumnPacker<NewRecord> {
  constructor(capacity?: number) {
    super(RECORD_CODEC, capacity);
  }
}

/** The records of a packed batch; their payloads are views into `packed.payloads` (no copy). */
export function unpackRecords(packed: PackedRecords): NewRecord[] {
  return unpackColumns(RECORD_CODEC, packed);
}
