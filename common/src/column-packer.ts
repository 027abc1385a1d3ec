/**
 * Rows on their way to another thread, packed by column: the strings in one array, the numbers in one
 * Float64Array, and every byte field copied once into one ArrayBuffer that is transferred, not cloned. A
 * postMessage of the rows themselves would clone each Buffer's whole backing store: a payload from Node's pool
 * (8 KiB) or decoded by grpc-js (a view into its whole message) would be copied once per row. The gateway's
 * journal thread and the cloud-stub's sink thread both take their rows this way.
 *
 * A RowCodec says how one kind of row goes into the columns and comes out again: it writes and reads its fields
 * in the same order, so the columns need no layout of their own.
 */

export interface PackedColumns {
  /** Rows packed. */
  count: number;
  /** Every row's strings, in turn. */
  strings: string[];
  /** Every row's numbers, in turn. */
  numbers: Float64Array;
  /** Where each byte field ends in `payloads`, in turn. */
  payloadEnds: Uint32Array;
  /** Every byte field, one after the other: list it in the transfer list of postMessage. */
  payloads: ArrayBuffer;
}

export interface ColumnWriter {
  string(value: string): void;
  number(value: number): void;
  /** Copied into the buffer that is transferred. */
  bytes(value: Uint8Array): void;
}

export interface ColumnReader {
  string(): string;
  number(): number;
  /** A view into the transferred buffer: no copy. */
  bytes(): Buffer;
}

/** How one kind of row is packed: `read` takes the fields in the order `write` gave them. */
export interface RowCodec<T> {
  write(row: T, to: ColumnWriter): void;
  read(from: ColumnReader): T;
}

/** The byte buffer's first size, unless the packer is told better. */
const INITIAL_CAPACITY = 64 * 1024;

/** Collects rows, then hands them out packed (take) and starts afresh. */
export class ColumnPacker<T> implements ColumnWriter {
  private strings: string[] = [];
  private numbers: number[] = [];
  private payloadEnds: number[] = [];
  private buffer: Buffer | undefined;
  private used = 0;
  private rows = 0;

  /** `capacity`: the byte buffer's first size (the exact total, when the caller knows it). */
  constructor(
    private readonly codec: RowCodec<T>,
    private capacity = INITIAL_CAPACITY,
  ) {}

  get count(): number {
    return this.rows;
  }

  add(row: T): void {
    this.codec.write(row, this);
    this.rows++;
  }

  string(value: string): void {
    this.strings.push(value);
  }

  number(value: number): void {
    this.numbers.push(value);
  }

  bytes(value: Uint8Array): void {
    const size = value.byteLength;
    if (this.buffer === undefined || this.used + size > this.buffer.length) this.grow(this.used + size);
    this.buffer!.set(value, this.used);
    this.used += size;
    this.payloadEnds.push(this.used);
  }

  /** What was added since the last take, ready to post (list `payloads` as transferable); starts afresh. */
  take(): PackedColumns {
    const packed: PackedColumns = {
      count: this.rows,
      strings: this.strings,
      numbers: Float64Array.from(this.numbers),
      payloadEnds: Uint32Array.from(this.payloadEnds),
      payloads: (this.buffer?.buffer as ArrayBuffer | undefined) ?? new ArrayBuffer(0),
    };
    this.strings = [];
    this.numbers = [];
    this.payloadEnds = [];
    this.rows = 0;
    // The next batch is likely the size of this one; transferring detaches the buffer, so the next is a new one,
    // made when the next byte field comes.
    this.capacity = Math.max(INITIAL_CAPACITY, this.used);
    this.buffer = undefined;
    this.used = 0;
    return packed;
  }

  private grow(needed: number): void {
    let capacity = this.buffer ? this.buffer.length * 2 : this.capacity;
    while (capacity < needed) capacity = Math.max(1, capacity * 2);
    const bigger = newBuffer(capacity);
    this.buffer?.copy(bigger, 0, 0, this.used);
    this.buffer = bigger;
  }
}

/** The rows of a packed batch; their byte fields are views into `packed.payloads` (no copy). */
export function unpackColumns<T>(codec: RowCodec<T>, packed: PackedColumns): T[] {
  const reader = new Reader(packed);
  const rows: T[] = [];
  for (let i = 0; i < packed.count; i++) rows.push(codec.read(reader));
  return rows;
}

class Reader implements ColumnReader {
  private s = 0;
  private n = 0;
  private b = 0;
  private start = 0;

  constructor(private readonly packed: PackedColumns) {}

  string(): string {
    return this.packed.strings[this.s++]!;
  }

  number(): number {
    return this.packed.numbers[this.n++]!;
  }

  bytes(): Buffer {
    const end = this.packed.payloadEnds[this.b++]!;
    const view = Buffer.from(this.packed.payloads, this.start, end - this.start);
    this.start = end;
    return view;
  }
}

/** A Buffer over its own ArrayBuffer: never one from Node's shared pool, which must not be transferred. */
function newBuffer(size: number): Buffer {
  return Buffer.from(new ArrayBuffer(size));
}
