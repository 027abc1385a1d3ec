/** An Ed25519 fleet key pair in a temp folder, and tokens signed with it, for tests. */
import { join } from 'node:path';
import { DEVICE_AUDIENCE, GATEWAY_AUDIENCE, generateKeys, issueToken, loadSigningKey, type TokenKey } from '@fleetgate/common';

export interface FleetKeys {
  /** The public key file: what gateways and backends verify with. */
  publicKeyFile: string;
  privateKeyFile: string;
  signing: TokenKey;
  device(id: string, options?: { ttlSeconds?: number; now?: number; audience?: string }): Promise<string>;
  gateway(id: string, options?: { ttlSeconds?: number; now?: number }): Promise<string>;
}

export async function makeFleetKeys(dir: string, name = 'fleet'): Promise<FleetKeys> {
  await generateKeys('EdDSA', dir, name);
  const privateKeyFile = join(dir, `${name}.key`);
  const signing = await loadSigningKey({ keyFile: privateKeyFile, field: 'test' });
  const issue = (subject: string, audience: string, ttlSeconds = 3600, now?: number) =>
    issueToken({ key: signing, subject, audience, ttlSeconds, ...(now !== undefined ? { now } : {}) });
  return {
    publicKeyFile: join(dir, `${name}.pub`),
    privateKeyFile,
    signing,
    device: (id, o = {}) => issue(id, o.audience ?? DEVICE_AUDIENCE, o.ttlSeconds, o.now),
    gateway: (id, o = {}) => issue(id, GATEWAY_AUDIENCE, o.ttlSeconds, o.now),
  };
}
