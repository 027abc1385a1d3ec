/**
 * Reading journal rows straight from the bytes of a SQLite file and its WAL, without SQLite: what salvage
 * falls back on when SQLite cannot read a damaged journal (a broken header, a broken interior page, frames
 * after a torn one in the WAL). Formats: https://www.sqlite.org/fileformat2.html (b-tree pages, record format,
 * WAL frames and their checksums).
 *
 * Only table-leaf cells whose record has the journal table's shape are taken (8 columns: the seq as the rowid
 * alias, then text, text, int, int, int, text, blob; and a 9th, the int `pending`, since schema 5), and only when the whole record is on the page; a row that
 * spills to overflow pages is counted as seen but not read. Freed pages can still hold old rows: the caller
 * decides which seqs it wants.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { JournalRecord } from '../journal.ts';

const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1');
const WAL_MAGIC_LE = 0x377f0682;
const WAL_MAGIC_BE = 0x377f0683;
const WAL_HEADER_BYTES = 32;
const FRAME_HEADER_BYTES = 24;
const TABLE_LEAF = 0x0d;
/** Columns of a journal row: 8, and 9 since schema 5 (rows written before it keep 8). */
const JOURNAL_COLUMNS = [8, 9];

export interface ScanOutcome {
  /** Journal rows read whole. */
  rows: number;
  /** Highest seq seen in a journal-shaped cell, read or not (0: none). */
  maxSeq: number;
  /** Journal-shaped cells that could not be read (overflowing or malformed). */
  unreadable: number;
}

export interface WalCheck {
  pageSize: number;
  /** Frames written in the WAL's current generation (matching salts), whether their checksum holds or not. */
  frames: number;
  /** Frames SQLite will use: the valid prefix. */
  validFrames: number;
  /** Set when a frame with a bad checksum is followed by frames of the same generation: not a torn tail but damage. */
  damage?: string;
}

/** Is this the start of a SQLite database file? */
export function hasSqliteHeader(head: Buffer): boolean {
  return head.length >= SQLITE_HEADER.length && head.subarray(0, SQLITE_HEADER.length).equals(SQLITE_HEADER);
}

/** The page size a database header states, or undefined when the header is not readable. */
export function headerPageSize(head: Buffer): number | undefined {
  if (!hasSqliteHeader(head) || head.length < 18) return undefined;
  const raw = head.readUInt16BE(16);
  const size = raw === 1 ? 65536 : raw;
  return size >= 512 && (size & (size - 1)) === 0 ? size : undefined;
}

/**
 * Checks a WAL's frames. A torn tail (the last frames of an interrupted write) is normal and SQLite ignores it;
 * a bad frame with good frames of the same generation after it means committed pages SQLite will not see.
 */
export function checkWal(walFile: string): WalCheck | undefined {
  const fd = tryOpen(walFile);
  if (fd === undefined) return undefined;
  try {
    const header = Buffer.alloc(WAL_HEADER_BYTES);
    if (readSync(fd, header, 0, WAL_HEADER_BYTES, 0) < WAL_HEADER_BYTES) return undefined; // empty or never written
    if (!isWalHeader(header)) return { pageSize: 0, frames: 0, validFrames: 0, damage: 'the WAL header is not a WAL header' };
    const pageSize = header.readUInt32BE(8);
    const sum = checksum(header.subarray(0, 24), [0, 0], header.readUInt32BE(0) === WAL_MAGIC_BE);
    if (sum[0] !== header.readUInt32BE(24) || sum[1] !== header.readUInt32BE(28)) {
      return { pageSize, frames: 0, validFrames: 0, damage: 'the WAL header checksum does not match' };
    }
    let frames = 0;
    let broken = 0;
    let validPrefix = 0;
    let lastCommit = 0;
    forEachFrame(fd, header, (frame, valid) => {
      frames++;
      if (!valid) broken++;
      if (valid && broken === 0) {
        validPrefix++;
        if (frame.readUInt32BE(4) !== 0) lastCommit = validPrefix;
      }
    });
    const check: WalCheck = { pageSize, frames, validFrames: lastCommit };
    if (broken > 0 && frames > validPrefix + 1) {
      check.damage = `WAL frame ${validPrefix + 1} of ${frames} is damaged; the ${frames - validPrefix - 1} written after it would be ignored`;
    }
    return check;
  } finally {
    closeSync(fd);
  }
}

/**
 * Calls `onRow` for every journal row found whole in the database file's pages and in the WAL's frames of the
 * current generation (valid or not: a row is checked by its shape, not by the frame's checksum).
 */
export function scanJournalRows(dbFile: string, walFile: string, onRow: (row: JournalRecord) => void): ScanOutcome {
  const outcome: ScanOutcome = { rows: 0, maxSeq: 0, unreadable: 0 };
  let pageSize: number | undefined;
  const fd = tryOpen(dbFile);
  if (fd !== undefined) {
    try {
      const head = Buffer.alloc(100);
      readSync(fd, head, 0, 100, 0);
      pageSize = headerPageSize(head);
      // A broken header leaves the page size unknown; the WAL states it, else SQLite's default.
      pageSize ??= checkWal(walFile)?.pageSize || 4096;
      const size = fstatSync(fd).size;
      const page = Buffer.alloc(pageSize);
      for (let pgno = 1; pgno * pageSize <= size; pgno++) {
        if (readSync(fd, page, 0, pageSize, (pgno - 1) * pageSize) < pageSize) break;
        scanPage(page, pgno === 1 ? 100 : 0, onRow, outcome);
      }
    } finally {
      closeSync(fd);
    }
  }
  const wal = tryOpen(walFile);
  if (wal !== undefined) {
    try {
      const header = Buffer.alloc(WAL_HEADER_BYTES);
      if (readSync(wal, header, 0, WAL_HEADER_BYTES, 0) === WAL_HEADER_BYTES && isWalHeader(header)) {
        forEachFrame(wal, header, (frame, valid) => {
          if (valid) scanPage(frame.subarray(FRAME_HEADER_BYTES), frame.readUInt32BE(0) === 1 ? 100 : 0, onRow, outcome);
        });
      }
    } finally {
      closeSync(wal);
    }
  }
  return outcome;
}

function isWalHeader(header: Buffer): boolean {
  const magic = header.readUInt32BE(0);
  const pageSize = header.readUInt32BE(8);
  return (
    (magic === WAL_MAGIC_LE || magic === WAL_MAGIC_BE) &&
    pageSize >= 512 &&
    pageSize <= 65536 &&
    (pageSize & (pageSize - 1)) === 0
  );
}

/**
 * Calls `onFrame` for each frame of the WAL's current generation (matching salts), saying whether its checksum
 * holds. Each frame is checked against the checksum its predecessor states, not the one it would have had: a
 * frame after a damaged one can still be verified (SQLite itself stops at the first bad frame).
 */
function forEachFrame(fd: number, header: Buffer, onFrame: (frame: Buffer, valid: boolean) => void): void {
  const bigEndian = header.readUInt32BE(0) === WAL_MAGIC_BE;
  const pageSize = header.readUInt32BE(8);
  const salt1 = header.readUInt32BE(16);
  const salt2 = header.readUInt32BE(20);
  let seed: [number, number] = [header.readUInt32BE(24), header.readUInt32BE(28)];
  const frame = Buffer.alloc(FRAME_HEADER_BYTES + pageSize);
  for (let offset = WAL_HEADER_BYTES; readSync(fd, frame, 0, frame.length, offset) === frame.length; offset += frame.length) {
    if (frame.readUInt32BE(8) !== salt1 || frame.readUInt32BE(12) !== salt2) continue; // an older generation's leftovers
    let sum = checksum(frame.subarray(0, 8), seed, bigEndian);
    sum = checksum(frame.subarray(FRAME_HEADER_BYTES), sum, bigEndian);
    const stated: [number, number] = [frame.readUInt32BE(16), frame.readUInt32BE(20)];
    onFrame(frame, sum[0] === stated[0] && sum[1] === stated[1]);
    seed = stated;
  }
}

function scanPage(page: Buffer, offset: number, onRow: (row: JournalRecord) => void, outcome: ScanOutcome): void {
  if (page[offset] !== TABLE_LEAF) return;
  const cells = page.readUInt16BE(offset + 3);
  const maxLocal = page.length - 35;
  for (let i = 0; i < cells; i++) {
    const pointer = offset + 8 + 2 * i;
    if (pointer + 2 > page.length) return;
    const cell = page.readUInt16BE(pointer);
    if (cell < offset + 8 || cell >= page.length) continue;
    try {
      const [payloadBytes, afterLength] = varint(page, cell);
      const [rowid, start] = varint(page, afterLength);
      if (!JOURNAL_COLUMNS.includes(columnCount(page, start) ?? 0)) continue;
      if (rowid > outcome.maxSeq) outcome.maxSeq = rowid;
      if (payloadBytes > maxLocal || start + payloadBytes > page.length) {
        outcome.unreadable++;
        continue;
      }
      const row = journalRow(page.subarray(start, start + payloadBytes), rowid);
      if (row === undefined) {
        outcome.unreadable++;
        continue;
      }
      outcome.rows++;
      onRow(row);
    } catch {
      // A cell running off the page: not a row.
    }
  }
}

/** The number of columns a record header declares (undefined when it is not a plausible header). */
function columnCount(page: Buffer, start: number): number | undefined {
  const [headerBytes, first] = varint(page, start);
  if (headerBytes < 2 || headerBytes > 64) return undefined;
  let columns = 0;
  for (let at = first; at < start + headerBytes; columns++) at = varint(page, at)[1];
  return columns;
}

/** Decodes a record of the journal table's shape; undefined if the record does not have it. */
function journalRow(record: Buffer, seq: number): JournalRecord | undefined {
  const [headerBytes, first] = varint(record, 0);
  const types: number[] = [];
  for (let at = first; at < headerBytes;) {
    const [type, next] = varint(record, at);
    types.push(type);
    at = next;
  }
  const isInt = (t: number) => (t >= 1 && t <= 6) || t === 8 || t === 9;
  const isText = (t: number) => t >= 13 && t % 2 === 1;
  const isBlob = (t: number) => t >= 12 && t % 2 === 0;
  const [seqType, device, stream, deviceSeq, deviceTime, gatewayTime, contentType, payload, pending = 1] = types as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number?,
  ];
  if (
    !JOURNAL_COLUMNS.includes(types.length) ||
    !isInt(pending) ||
    seqType !== 0 ||
    !isText(device) ||
    !isText(stream) ||
    !isInt(deviceSeq) ||
    !isInt(deviceTime)
  )
    return undefined;
  if (!isInt(gatewayTime) || !isText(contentType) || !isBlob(payload)) return undefined;
  let at = headerBytes;
  const values: Array<string | number | Buffer> = [];
  for (const type of types.slice(1)) {
    const size = serialSize(type);
    if (at + size > record.length) return undefined;
    if (isText(type)) values.push(record.toString('utf8', at, at + size));
    else if (isBlob(type)) values.push(Buffer.from(record.subarray(at, at + size)));
    else values.push(readInt(record, at, type));
    at += size;
  }
  if (at !== record.length) return undefined;
  return {
    seq,
    deviceId: values[0] as string,
    stream: values[1] as string,
    deviceSeq: values[2] as number,
    deviceTimeMs: values[3] as number,
    gatewayTimeMs: values[4] as number,
    contentType: values[5] as string,
    payload: values[6] as Buffer,
  };
}

function serialSize(type: number): number {
  if (type >= 12) return (type - (type % 2 === 0 ? 12 : 13)) / 2;
  return [0, 1, 2, 3, 4, 6, 8, 8, 0, 0][type] ?? 0;
}

function readInt(buf: Buffer, at: number, type: number): number {
  if (type === 8) return 0;
  if (type === 9) return 1;
  if (type === 6) return Number(buf.readBigInt64BE(at));
  return buf.readIntBE(at, serialSize(type));
}

/** A SQLite varint at `at`: its value and where the next field starts. */
function varint(buf: Buffer, at: number): [number, number] {
  let value = 0;
  for (let i = 0; i < 8; i++) {
    const byte = buf[at + i];
    if (byte === undefined) throw new RangeError('varint runs off the buffer');
    value = value * 128 + (byte & 0x7f);
    if ((byte & 0x80) === 0) return [value, at + i + 1];
  }
  const last = buf[at + 8];
  if (last === undefined) throw new RangeError('varint runs off the buffer');
  return [value * 256 + last, at + 9];
}

/** SQLite's WAL checksum over `data` (a multiple of 8 bytes), continuing from `sum`. */
function checksum(data: Buffer, [s0, s1]: [number, number], bigEndian: boolean): [number, number] {
  for (let i = 0; i < data.length; i += 8) {
    const x0 = bigEndian ? data.readUInt32BE(i) : data.readUInt32LE(i);
    const x1 = bigEndian ? data.readUInt32BE(i + 4) : data.readUInt32LE(i + 4);
    s0 = (s0 + x0 + s1) >>> 0;
    s1 = (s1 + x1 + s0) >>> 0;
  }
  return [s0, s1];
}

function tryOpen(file: string): number | undefined {
  try {
    return openSync(file, 'r');
  } catch {
    return undefined;
  }
}
