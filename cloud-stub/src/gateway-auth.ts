/**
 * Who is on the other end of an uplink stream. With tokens, the gateway sends `authorization: Bearer <jwt>`
 * metadata; its id is the token's `sub`, not whatever Hello says. Anonymous mode (--allow-anonymous, labs
 * only) trusts Hello.
 */
import { status, type Metadata } from '@grpc/grpc-js';
import type { TokenClaims, TokenVerifier } from '@fleetgate/common';

export type GatewayAuthResult = { ok: true; claims?: TokenClaims } | { ok: false; code: status; message: string };

export interface GatewayAuth {
  readonly kind: 'token' | 'anonymous';
  authenticate(metadata: Metadata): Promise<GatewayAuthResult>;
  /** Claims that were valid are still: not expired, not revoked. */
  stillValid(claims: TokenClaims): boolean;
}

export class AnonymousGatewayAuth implements GatewayAuth {
  readonly kind = 'anonymous';
  async authenticate(): Promise<GatewayAuthResult> {
    return { ok: true };
  }
  stillValid(): boolean {
    return true;
  }
}

export class TokenGatewayAuth implements GatewayAuth {
  readonly kind = 'token';

  constructor(readonly verifier: TokenVerifier) {}

  async authenticate(metadata: Metadata): Promise<GatewayAuthResult> {
    const header = metadata.get('authorization')[0];
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)$/i.exec(header) : null;
    if (!match)
      return { ok: false, code: status.UNAUTHENTICATED, message: 'missing "authorization: Bearer <gateway token>" metadata' };
    const result = await this.verifier.verify(match[1]);
    if (!result.ok)
      return { ok: false, code: status.UNAUTHENTICATED, message: `gateway token refused (${result.reason}): ${result.message}` };
    return { ok: true, claims: result.claims };
  }

  stillValid(claims: TokenClaims): boolean {
    return this.verifier.stillValid(claims);
  }
}
