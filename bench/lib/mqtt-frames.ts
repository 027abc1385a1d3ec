/**
 * Splits a TCP stream into MQTT packets, for the benchmarks' hand-rolled clients (the loader and the
 * subscriber): `onPacket(buf, first, bodyAt, bodyLength)` gets each whole packet (`first`: its first byte, type
 * and flags); the return value is
 * what is left over (an incomplete packet), to be passed back in with the next chunk.
 */
export function splitPackets(
  pending: Buffer,
  chunk: Buffer,
  onPacket: (buf: Buffer, first: number, bodyAt: number, bodyLength: number) => void,
): Buffer {
  const buf = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk;
  let offset = 0;
  for (;;) {
    if (buf.length - offset < 2) break;
    let length = 0;
    let multiplier = 1;
    let i = offset + 1;
    let byte: number;
    do {
      if (i >= buf.length) break;
      byte = buf[i++]!;
      length += (byte & 0x7f) * multiplier;
      multiplier *= 128;
    } while (byte & 0x80);
    if (i + length > buf.length || (buf[i - 1]! & 0x80) !== 0) break;
    onPacket(buf, buf[offset]!, i, length);
    offset = i + length;
  }
  return offset < buf.length ? Buffer.from(buf.subarray(offset)) : Buffer.alloc(0);
}
