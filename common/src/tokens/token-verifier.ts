/**
 * Checks tokens: signature, algorithm, audience, time, revocation. A result, not an exception: a refused
 * token is an expected outcome, and each reason maps to a precise refusal (a CONNACK code, a gRPC status).
 * Verified claims are cached (lru-cache) until the token expires, so a reconnect storm costs one signature
 * check per token, not one per connection; revocation is checked on every call, so it takes effect at once.
 */
import { createHash } from 'node:crypto';
import { errors, jwtVerify } from 'jose';
import { LRUCache } from 'lru-cache';
import { type Clock, systemClock } from '@fleetgate/core';
import type { TokenKey } from './keys.ts';
import type { RevocationList } from './revocation-list.ts';
import type { TokenClaims } from './tokens.ts';

export type TokenRefusal =
  | 'missing'
  | 'malformed'
  | 'bad-signature'
  | 'wrong-algorithm'
  | 'expired'
  | 'not-yet-valid'
  | 'wrong-audience'
  | 'missing-claims'
  | 'revoked';

export type VerifyResult = { ok: true; claims: TokenClaims } | { ok: false; reason: TokenRefusal; message: string };

export interface TokenVerifierOptions {
  key: TokenKey;
  audience: string;
  revocations?: RevocationList;
  /** Verified tokens remembered at once. */
  cacheSize?: number;
  clock?: Clock;
}

export class TokenVerifier {
  private readonly cache: LRUCache<string, TokenClaims>;
  private readonly clock: Clock;

  constructor(private readonly options: TokenVerifierOptions) {
    this.clock = options.clock ?? systemClock;
    this.cache = new LRUCache({ max: options.cacheSize ?? 10_000 });
  }

  get revocations(): RevocationList | undefined {
    return this.options.revocations;
  }

  async verify(token: string | undefined): Promise<VerifyResult> {
    if (token === undefined || token === '') return { ok: false, reason: 'missing', message: 'no token' };
    const key = cacheKey(token);
    const nowMs = this.clock.now();
    let claims = this.cache.get(key);
    if (claims && claims.exp * 1000 <= nowMs) {
      this.cache.delete(key);
      claims = undefined;
    }
    if (!claims) {
      const result = await this.check(token, nowMs);
      if (!result.ok) return result;
      claims = result.claims;
      this.cache.set(key, claims, { ttl: Math.max(1, claims.exp * 1000 - nowMs) });
    }
    if (this.options.revocations?.isRevoked(claims))
      return { ok: false, reason: 'revoked', message: `token ${claims.jti} of ${claims.sub} is revoked` };
    return { ok: true, claims };
  }

  /** True while claims that were valid are still: not expired, not revoked. */
  stillValid(claims: TokenClaims): boolean {
    return claims.exp * 1000 > this.clock.now() && !this.options.revocations?.isRevoked(claims);
  }

  private async check(token: string, nowMs: number): Promise<VerifyResult> {
    try {
      const { payload } = await jwtVerify(token, this.options.key.key, {
        algorithms: [this.options.key.alg],
        audience: this.options.audience,
        currentDate: new Date(nowMs),
        requiredClaims: ['sub', 'exp', 'iat', 'jti'],
      });
      if (typeof payload.sub !== 'string' || typeof payload.exp !== 'number' || typeof payload.jti !== 'string') {
        return { ok: false, reason: 'missing-claims', message: 'token lacks sub, exp or jti' };
      }
      return {
        ok: true,
        claims: { sub: payload.sub, aud: this.options.audience, iat: payload.iat ?? 0, exp: payload.exp, jti: payload.jti },
      };
    } catch (err: unknown) {
      return refusal(err);
    }
  }
}

function refusal(err: unknown): VerifyResult & { ok: false } {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof errors.JWTExpired) return { ok: false, reason: 'expired', message: 'token expired' };
  if (err instanceof errors.JWSSignatureVerificationFailed)
    return { ok: false, reason: 'bad-signature', message: 'token signature does not verify' };
  if (err instanceof errors.JOSEAlgNotAllowed) return { ok: false, reason: 'wrong-algorithm', message };
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'aud') return { ok: false, reason: 'wrong-audience', message: 'token is not meant for this service (aud)' };
    if (err.claim === 'nbf' || err.claim === 'iat') return { ok: false, reason: 'not-yet-valid', message };
    return { ok: false, reason: 'missing-claims', message };
  }
  return { ok: false, reason: 'malformed', message: `not a usable token: ${message}` };
}

/** Tokens are credentials: the cache keeps their hashes, not the tokens. */
function cacheKey(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}
