/**
 * Who a connecting MQTT client is. Two ways, chosen at start-up:
 * - TokenAuth: the password is a device token (JWT); the client id must equal its `sub`.
 * - AnonymousAuth (--allow-anonymous, labs only): the client id is the device id, no credentials.
 *
 * Refusals map to MQTT 3.1.1 CONNACK return codes (section 3.2.2.3):
 *   0x02 identifier rejected   the client id cannot be a device id (empty, or not [A-Za-z0-9._:-], <= 128)
 *   0x03 server unavailable    too many connections
 *   0x04 bad user name or password   no token, or one that is malformed, badly signed, of another
 *                                    algorithm, expired or not yet valid (the device should get a new one)
 *   0x05 not authorized        a valid token that may not connect: for another audience, revoked, or whose
 *                              sub is not the client id
 */
import type { TokenClaims, TokenRefusal, TokenVerifier } from '@fleetgate/common';
import { DEVICE_ID } from './topics.ts';

export const CONNACK = { IDENTIFIER_REJECTED: 2, SERVER_UNAVAILABLE: 3, BAD_USERNAME_OR_PASSWORD: 4, NOT_AUTHORIZED: 5 } as const;
export type ConnackCode = (typeof CONNACK)[keyof typeof CONNACK];

export type AuthRefusal = 'identifier-rejected' | `token-${TokenRefusal}` | 'client-id-mismatch';

export type AuthResult =
  | { ok: true; deviceId: string; claims?: TokenClaims }
  | { ok: false; reason: AuthRefusal; returnCode: ConnackCode; message: string };

export interface DeviceAuthenticator {
  readonly kind: 'token' | 'anonymous';
  /** MQTT: the client id must be the device id; the password is the token. */
  authenticate(clientId: string, password: Buffer | undefined): Promise<AuthResult>;
  /**
   * Device link: the token comes in metadata, the id the device claims in Hello. With tokens the claim may be
   * empty (the token's sub is the id) or must equal the sub; anonymous devices must claim a usable id.
   */
  identify(claimedId: string, token: string | undefined): Promise<AuthResult>;
}

const TOKEN_CODES: Record<TokenRefusal, ConnackCode> = {
  missing: CONNACK.BAD_USERNAME_OR_PASSWORD,
  malformed: CONNACK.BAD_USERNAME_OR_PASSWORD,
  'bad-signature': CONNACK.BAD_USERNAME_OR_PASSWORD,
  'wrong-algorithm': CONNACK.BAD_USERNAME_OR_PASSWORD,
  expired: CONNACK.BAD_USERNAME_OR_PASSWORD,
  'not-yet-valid': CONNACK.BAD_USERNAME_OR_PASSWORD,
  'missing-claims': CONNACK.BAD_USERNAME_OR_PASSWORD,
  'wrong-audience': CONNACK.NOT_AUTHORIZED,
  revoked: CONNACK.NOT_AUTHORIZED,
};

function identifierRejected(clientId: string): AuthResult {
  return {
    ok: false,
    reason: 'identifier-rejected',
    returnCode: CONNACK.IDENTIFIER_REJECTED,
    message: `client id "${clientId.slice(0, 140)}" is not a device id (1-128 of [A-Za-z0-9._:-])`,
  };
}

export class AnonymousAuth implements DeviceAuthenticator {
  readonly kind = 'anonymous';

  async authenticate(clientId: string): Promise<AuthResult> {
    return DEVICE_ID.test(clientId) ? { ok: true, deviceId: clientId } : identifierRejected(clientId);
  }

  identify(claimedId: string): Promise<AuthResult> {
    return this.authenticate(claimedId);
  }
}

export class TokenAuth implements DeviceAuthenticator {
  readonly kind = 'token';

  constructor(readonly verifier: TokenVerifier) {}

  async authenticate(clientId: string, password: Buffer | undefined): Promise<AuthResult> {
    if (!DEVICE_ID.test(clientId)) return identifierRejected(clientId);
    const result = await this.verifier.verify(password?.toString('utf8'));
    if (!result.ok)
      return { ok: false, reason: `token-${result.reason}`, returnCode: TOKEN_CODES[result.reason], message: result.message };
    if (result.claims.sub !== clientId) {
      return {
        ok: false,
        reason: 'client-id-mismatch',
        returnCode: CONNACK.NOT_AUTHORIZED,
        message: `client id "${clientId}" is not the token's subject "${result.claims.sub}"`,
      };
    }
    return { ok: true, deviceId: clientId, claims: result.claims };
  }

  async identify(claimedId: string, token: string | undefined): Promise<AuthResult> {
    if (claimedId !== '') return this.authenticate(claimedId, token === undefined ? undefined : Buffer.from(token));
    const result = await this.verifier.verify(token);
    if (!result.ok)
      return { ok: false, reason: `token-${result.reason}`, returnCode: TOKEN_CODES[result.reason], message: result.message };
    return DEVICE_ID.test(result.claims.sub)
      ? { ok: true, deviceId: result.claims.sub, claims: result.claims }
      : identifierRejected(result.claims.sub);
  }
}
