/**
 * Who a connecting device is (device-authenticator.ts), two ways, chosen at start-up:
 * - TokenAuth: the password (MQTT) or the bearer token (device link) is a device token (JWT); the client id must
 *   equal its `sub`.
 * - AnonymousAuth (--allow-anonymous, labs only): the client id is the device id, no credentials.
 * A refusal is a reason; what each protocol answers for it (the CONNACK return code, the gRPC status) is in
 * refusals.ts.
 */
import type { TokenVerifier } from '@fleetgate/common';
import type { AuthResult, DeviceAuthenticator } from './device-authenticator.ts';
import { DEVICE_ID } from './topics.ts';

function identifierRejected(clientId: string): AuthResult {
  return {
    ok: false,
    reason: 'identifier-rejected',
    message: PROTOTYPE_KEYS.has(clientId)
      ? `client id "${clientId}" is the name of a JavaScript Object.prototype member, refused (aedes-guards.ts)`
      : `client id "${clientId.slice(0, 140)}" is not a device id (1-128 characters, none of them / + # or a control character)`,
  };
}

/**
 * `constructor`, `toString`, `__proto__` ...: names every plain object answers for. aedes 2.0.0-beta.1 kept its
 * clients in one (aedes-guards.ts); they are refused as device ids, so that nothing downstream (the cloud's and
 * integrations' maps keyed by device id) meets them either.
 */
const PROTOTYPE_KEYS = new Set(Object.getOwnPropertyNames(Object.prototype));

function isDeviceId(id: string): boolean {
  return DEVICE_ID.test(id) && !PROTOTYPE_KEYS.has(id);
}

export class AnonymousAuth implements DeviceAuthenticator {
  readonly kind = 'anonymous';

  async authenticate(clientId: string): Promise<AuthResult> {
    return isDeviceId(clientId) ? { ok: true, deviceId: clientId } : identifierRejected(clientId);
  }

  identify(claimedId: string): Promise<AuthResult> {
    return this.authenticate(claimedId);
  }
}

export class TokenAuth implements DeviceAuthenticator {
  readonly kind = 'token';

  constructor(readonly verifier: TokenVerifier) {}

  async authenticate(clientId: string, password: Buffer | undefined): Promise<AuthResult> {
    if (!isDeviceId(clientId)) return identifierRejected(clientId);
    const result = await this.verifier.verify(password?.toString('utf8'));
    if (!result.ok) return { ok: false, reason: `token-${result.reason}`, message: result.message };
    if (result.claims.sub !== clientId) {
      return {
        ok: false,
        reason: 'client-id-mismatch',
        message: `client id "${clientId}" is not the token's subject "${result.claims.sub}"`,
      };
    }
    return { ok: true, deviceId: clientId, claims: result.claims };
  }

  async identify(claimedId: string, token: string | undefined): Promise<AuthResult> {
    if (claimedId !== '') return this.authenticate(claimedId, token === undefined ? undefined : Buffer.from(token));
    const result = await this.verifier.verify(token);
    if (!result.ok) return { ok: false, reason: `token-${result.reason}`, message: result.message };
    return isDeviceId(result.claims.sub)
      ? { ok: true, deviceId: result.claims.sub, claims: result.claims }
      : identifierRejected(result.claims.sub);
  }
}
