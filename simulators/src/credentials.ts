/**
 * Tokens for a simulated fleet, minted with the fleet's signing key as a provisioning service would. A token
 * lives `ttlSeconds`, except that tokens minted before an `expire-tokens` fault expire at that moment: the
 * gateway then cuts their sessions and refuses them, and the devices come back with fresh ones.
 */
import { DEVICE_AUDIENCE, issueToken, type TokenKey } from '@fleetgate/common';

export interface DeviceCredentials {
  /** The token a device should connect with now; undefined for an anonymous gateway. */
  token(deviceId: string): Promise<string | undefined>;
}

export const ANONYMOUS: DeviceCredentials = { token: async () => undefined };

export class FleetTokens implements DeviceCredentials {
  private readonly tokens = new Map<string, { token: string; expiresAtMs: number }>();
  private readonly expiries: number[] = [];

  constructor(
    private readonly key: TokenKey,
    private readonly ttlSeconds: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Every token minted before `atMs` expires at `atMs` (ms since the epoch). */
  expireAllAt(atMs: number): void {
    this.expiries.push(atMs);
    this.expiries.sort((a, b) => a - b);
  }

  async token(deviceId: string): Promise<string> {
    const now = this.now();
    const held = this.tokens.get(deviceId);
    // A token about to expire is replaced, as a device refreshing ahead of time would.
    if (held && held.expiresAtMs > now + 1000) return held.token;
    const nextExpiry = this.expiries.find((at) => at > now + 1000);
    const expiresAtMs = Math.min(now + this.ttlSeconds * 1000, nextExpiry ?? Infinity);
    const nowSeconds = Math.floor(now / 1000);
    const token = await issueToken({
      key: this.key,
      subject: deviceId,
      audience: DEVICE_AUDIENCE,
      ttlSeconds: Math.max(1, Math.floor(expiresAtMs / 1000) - nowSeconds),
      now: nowSeconds,
    });
    this.tokens.set(deviceId, { token, expiresAtMs: Math.floor(expiresAtMs / 1000) * 1000 });
    return token;
  }
}
