/**
 * Key material for fleetgate tokens (JWTs signed with jose):
 * - HS256: one shared secret (>= 32 random bytes, stored base64url). Whoever can verify can also mint.
 * - EdDSA (Ed25519): a private key that signs (PKCS#8 PEM) and a public key that only verifies (SPKI PEM).
 *   A gateway given only the public key cannot mint device tokens, even if it is stolen.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportPKCS8, exportSPKI, generateKeyPair, importPKCS8, importSPKI, type CryptoKey } from 'jose';
import { ConfigError } from '@fleetgate/core';

export type TokenAlgorithm = 'HS256' | 'EdDSA';
export const TOKEN_ALGORITHMS: readonly TokenAlgorithm[] = ['EdDSA', 'HS256'];

export interface TokenKey {
  alg: TokenAlgorithm;
  key: CryptoKey | Uint8Array;
}

const MIN_SECRET_BYTES = 32;

/** Where a key comes from: a shared secret file (HS256), or a PEM key file (EdDSA). `field` names the flag. */
export type KeySource = { secretFile: string; field: string } | { keyFile: string; field: string };

/** A key that signs: the HS256 secret, or the EdDSA private key. */
export async function loadSigningKey(source: KeySource): Promise<TokenKey> {
  if ('secretFile' in source) return { alg: 'HS256', key: readSecret(source.secretFile, source.field) };
  const pem = readKeyFile(source.keyFile, source.field);
  if (!pem.includes('PRIVATE KEY'))
    throw new ConfigError(source.field, `${source.keyFile} is not a private key (PKCS#8 PEM); signing needs the private key`);
  try {
    return { alg: 'EdDSA', key: await importPKCS8(pem, 'EdDSA') };
  } catch (err: unknown) {
    throw new ConfigError(source.field, `${source.keyFile} is not an Ed25519 private key: ${(err as Error).message}`);
  }
}

/** A key that verifies: the HS256 secret, or the EdDSA public key (SPKI PEM). */
export async function loadVerifyingKey(source: KeySource): Promise<TokenKey> {
  if ('secretFile' in source) return { alg: 'HS256', key: readSecret(source.secretFile, source.field) };
  const pem = readKeyFile(source.keyFile, source.field);
  if (!pem.includes('PUBLIC KEY')) {
    throw new ConfigError(
      source.field,
      `${source.keyFile} is not a public key (SPKI PEM): give verifiers the .pub file, never the private key`,
    );
  }
  try {
    return { alg: 'EdDSA', key: await importSPKI(pem, 'EdDSA') };
  } catch (err: unknown) {
    throw new ConfigError(source.field, `${source.keyFile} is not an Ed25519 public key: ${(err as Error).message}`);
  }
}

export interface GeneratedKeys {
  /** Files written: the secret, or the private and the public key. */
  files: string[];
}

/** Writes new key material into `dir`: `<name>.secret` (HS256) or `<name>.key` + `<name>.pub` (EdDSA). */
export async function generateKeys(alg: TokenAlgorithm, dir: string, name = 'fleet'): Promise<GeneratedKeys> {
  mkdirSync(dir, { recursive: true });
  if (alg === 'HS256') {
    const file = join(dir, `${name}.secret`);
    writePrivate(file, randomBytes(MIN_SECRET_BYTES).toString('base64url') + '\n');
    return { files: [file] };
  }
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
  const privateFile = join(dir, `${name}.key`);
  const publicFile = join(dir, `${name}.pub`);
  writePrivate(privateFile, await exportPKCS8(privateKey));
  writeFileSync(publicFile, await exportSPKI(publicKey), { flag: 'wx' });
  return { files: [privateFile, publicFile] };
}

function readSecret(file: string, field: string): Uint8Array {
  const text = readKeyFile(file, field).trim();
  const secret = Buffer.from(text, 'base64url');
  if (secret.length < MIN_SECRET_BYTES || secret.toString('base64url') !== text.replace(/=+$/, '')) {
    throw new ConfigError(
      field,
      `${file} must hold at least ${MIN_SECRET_BYTES} random bytes, base64url-encoded (make one with \`fleetgate token keygen --alg HS256\`)`,
    );
  }
  return new Uint8Array(secret);
}

function readKeyFile(file: string, field: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err: unknown) {
    throw new ConfigError(field, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Private key material: created readable by its owner only, and never over an existing file. */
function writePrivate(file: string, content: string): void {
  writeFileSync(file, content, { flag: 'wx', mode: 0o600 });
  chmodSync(file, 0o600);
}
