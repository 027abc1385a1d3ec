/** Bytes and content type of a payload: bytes as they are, a string as UTF-8, anything else as JSON. */
export function encodePayload(payload: unknown, contentType?: string): { bytes: Buffer; contentType: string } {
  if (payload instanceof Uint8Array)
    return { bytes: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), contentType: contentType ?? '' };
  if (typeof payload === 'string') return { bytes: Buffer.from(payload, 'utf8'), contentType: contentType ?? '' };
  return { bytes: Buffer.from(JSON.stringify(payload) ?? 'null', 'utf8'), contentType: contentType ?? 'application/json' };
}
