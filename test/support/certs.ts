/**
 * Certificates made at test time (@peculiar/x509 over WebCrypto, ECDSA P-256): a CA, a server certificate for
 * 127.0.0.1 and localhost, client certificates signed by the CA, and a second, untrusted CA with its own client.
 */
// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata polyfill first.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface PemPair {
  cert: string;
  key: string;
}

export interface TestPki {
  dir: string;
  /** File paths: ca.pem, server.pem/server.key, client-<name>.pem/.key, untrusted-ca.pem, untrusted-client.pem/.key */
  file(name: string): string;
}

async function keyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return `-----BEGIN PRIVATE KEY-----\n${Buffer.from(der)
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .trimEnd()}\n-----END PRIVATE KEY-----\n`;
}

async function makeCa(name: string) {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: Date.now().toString(16),
    name: `CN=${name}`,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 24 * 3600_000),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ],
  });
  return { cert, keys };
}

async function makeLeaf(ca: Awaited<ReturnType<typeof makeCa>>, cn: string, server: boolean): Promise<PemPair> {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: (Date.now() + Math.floor(Math.random() * 1e6)).toString(16),
    subject: `CN=${cn}`,
    issuer: ca.cert.subject,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 24 * 3600_000),
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([server ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth]),
      ...(server
        ? [
            new x509.SubjectAlternativeNameExtension([
              { type: 'ip', value: '127.0.0.1' },
              { type: 'dns', value: 'localhost' },
            ]),
          ]
        : []),
    ],
  });
  return { cert: cert.toString('pem'), key: await keyPem(keys.privateKey) };
}

/** Writes a test PKI into `dir` and returns where each file is. */
export async function makeTestPki(dir: string, clients: string[] = ['dev-1', 'gw-test']): Promise<TestPki> {
  mkdirSync(dir, { recursive: true });
  const ca = await makeCa('fleetgate test CA');
  const untrusted = await makeCa('someone else');
  writeFileSync(join(dir, 'ca.pem'), ca.cert.toString('pem'));
  writeFileSync(join(dir, 'untrusted-ca.pem'), untrusted.cert.toString('pem'));
  const write = (name: string, pair: PemPair) => {
    writeFileSync(join(dir, `${name}.pem`), pair.cert);
    writeFileSync(join(dir, `${name}.key`), pair.key, { mode: 0o600 });
  };
  write('server', await makeLeaf(ca, 'localhost', true));
  for (const name of clients) write(`client-${name}`, await makeLeaf(ca, name, false));
  write('untrusted-client', await makeLeaf(untrusted, 'dev-1', false));
  return { dir, file: (name) => join(dir, name) };
}
