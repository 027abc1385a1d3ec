/**
 * fleetgate tokens: JWTs whose `sub` is the holder's id and whose `aud` says who may accept them.
 * - device tokens: sub = device id, aud = "fleetgate-gateway" (presented to gateways)
 * - gateway tokens: sub = gateway id, aud = "fleetgate-cloud" (presented to backends)
 * Every token also has iat, exp and a random jti (so that one token can be revoked).
 */
import { randomUUID } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, SignJWT } from 'jose';
import type { TokenKey } from './keys.ts';

export const DEVICE_AUDIENCE = 'fleetgate-gateway';
export const GATEWAY_AUDIENCE = 'fleetgate-cloud';

export interface TokenClaims {
  sub: string;
  aud: string;
  /** Seconds since the epoch. */
  iat: number;
  exp: number;
  jti: string;
}

export interface IssueOptions {
  key: TokenKey;
  subject: string;
  audience: string;
  ttlSeconds: number;
  /** Seconds since the epoch; default now. */
  now?: number;
}

export async function issueToken({
  key,
  subject,
  audience,
  ttlSeconds,
  now = Math.floor(Date.now() / 1000),
}: IssueOptions): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: key.alg, typ: 'JWT' })
    .setSubject(subject)
    .setAudience(audience)
    .setIssuedAt(now)
    .setExpirationTime(now + ttlSeconds)
    .setJti(randomUUID())
    .sign(key.key);
}

/** What a token says, without checking its signature: for `fleetgate token inspect` and log fields. */
export function decodeToken(token: string): { header: Record<string, unknown>; claims: Record<string, unknown> } {
  return { header: decodeProtectedHeader(token) as Record<string, unknown>, claims: decodeJwt(token) as Record<string, unknown> };
}
