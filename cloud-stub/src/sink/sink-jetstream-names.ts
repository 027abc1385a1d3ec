/**
 * Names the JetStream sink uses (design in sink-jetstream.ts). Everything derives from the stream name:
 *
 *   stream   FLEETGATE                                  ([A-Za-z0-9_-], 1-32 characters)
 *   records  fleetgate.rec.<gatewayId>.<deviceId>       prefix = the stream name lower-cased
 *   gaps     fleetgate.gap.<gatewayId>
 *   KV       fleetgate-seqs, key <gatewayId>            (stream KV_fleetgate-seqs)
 *   msg id   <gatewayId>:<seq> for a record, <gatewayId>:<fromSeq>:gap for a gap
 *
 * Ids go into subject tokens and KV keys encoded, reversibly:
 * - A subject token cannot hold `.` (the separator), `*` or `>` (wildcards) nor whitespace. Those, `%` itself and
 *   the other control characters become `%XX` (the byte in hex); anything else stays, so `gw-1` reads `gw-1` and
 *   `a.b:c` reads `a%2Eb:c`. The empty id (no token may be empty) is the lone token `%`.
 * - A KV key is `[-/=.A-Za-z0-9_]+` and must not start or end with `.` (nats.js checks it). Every character but
 *   `[A-Za-z0-9_-]` becomes `=XX` per UTF-8 byte: `a.b:c` is `a=2Eb=3Ac`. The empty id is `=`.
 * Message ids are header values, not tokens: they hold the raw gateway id. A record's id ends in `:<digits>`, a
 * gap's in `:gap`, so the two never meet whatever the gateway id holds.
 */
import { ConfigError } from '@fleetgate/core';
import { StreamMessageError } from '../errors.ts';

export const DEFAULT_STREAM = 'FLEETGATE';

const STREAM_NAME = /^[A-Za-z0-9_-]{1,32}$/;

export interface JetStreamNames {
  stream: string;
  /** First token of every subject of the stream. */
  prefix: string;
  /** Matches every record subject. */
  records: string;
  /** Matches every gap subject. */
  gaps: string;
  kvBucket: string;
}

export function jetStreamNames(stream: string): JetStreamNames {
  if (!STREAM_NAME.test(stream)) throw new ConfigError('stream', `"${stream}" is not 1-32 of [A-Za-z0-9_-]`);
  const prefix = stream.toLowerCase();
  return { stream, prefix, records: `${prefix}.rec.>`, gaps: `${prefix}.gap.>`, kvBucket: `${prefix}-seqs` };
}

export function recordSubject(prefix: string, gatewayId: string, deviceId: string): string {
  return `${prefix}.rec.${encodeToken(gatewayId)}.${encodeToken(deviceId)}`;
}

/** Every record subject of one gateway. */
export function gatewayRecordsFilter(prefix: string, gatewayId: string): string {
  return `${prefix}.rec.${encodeToken(gatewayId)}.*`;
}

export function gapSubject(prefix: string, gatewayId: string): string {
  return `${prefix}.gap.${encodeToken(gatewayId)}`;
}

/** The gateway and device of a record subject, the gateway of a gap subject. */
export function parseSubject(
  subject: string,
): { kind: 'rec'; gatewayId: string; deviceId: string } | { kind: 'gap'; gatewayId: string } {
  const [, kind, gateway, device, extra] = subject.split('.');
  if (kind === 'rec' && gateway !== undefined && device !== undefined && extra === undefined) {
    return { kind, gatewayId: decodeToken(gateway), deviceId: decodeToken(device) };
  }
  if (kind === 'gap' && gateway !== undefined && device === undefined) return { kind, gatewayId: decodeToken(gateway) };
  throw new StreamMessageError(`not a fleetgate subject: ${subject}`);
}

export function recordMsgId(gatewayId: string, seq: number): string {
  return `${gatewayId}:${seq}`;
}

export function gapMsgId(gatewayId: string, fromSeq: number): string {
  return `${gatewayId}:${fromSeq}:gap`;
}

// Whitespace, controls, DEL, and `%` `*` `.` `>`: what a subject token cannot hold, and the escape character.
// oxlint-disable-next-line no-control-regex -- matching control characters is the point
const TOKEN_UNSAFE = /[\u0000-\u0020\u007f%*.>]/g;

export function encodeToken(id: string): string {
  if (id === '') return '%';
  return id.replace(TOKEN_UNSAFE, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

export function decodeToken(token: string): string {
  if (token === '%') return '';
  return decodeURIComponent(token);
}

const KEY_SAFE = /^[A-Za-z0-9_-]$/;

export function encodeKey(id: string): string {
  if (id === '') return '=';
  let out = '';
  for (const c of id) {
    if (KEY_SAFE.test(c)) out += c;
    else for (const byte of Buffer.from(c, 'utf8')) out += `=${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export function decodeKey(key: string): string {
  if (key === '=') return '';
  return decodeURIComponent(key.replaceAll('=', '%'));
}
