/**
 * Who a connecting device is: the interface both ingress paths ask (MQTT CONNECT in connect-hooks.ts, the device
 * link's Hello in device-link/device-handshake.ts). Implementations: device-auth.ts (tokens, or anonymous for labs).
 * A refusal is a reason from refusals.ts; what each protocol answers for it is decided there.
 */
import type { TokenClaims, TokenRefusal } from '@fleetgate/common';

export type AuthRefusal = 'identifier-rejected' | `token-${TokenRefusal}` | 'client-id-mismatch';

export type AuthResult =
  { ok: true; deviceId: string; claims?: TokenClaims } | { ok: false; reason: AuthRefusal; message: string };

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
