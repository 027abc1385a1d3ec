import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import {
  DEVICE_AUDIENCE,
  GATEWAY_AUDIENCE,
  generateKeys,
  issueToken,
  loadSigningKey,
  loadVerifyingKey,
  RevocationList,
  type TokenKey,
  TokenVerifier,
} from '@fleetgate/common';
import { useTempDir } from '../support/temp-dir.ts';

describe('tokens', function () {
  this.timeout(10_000);
  const dir = useTempDir();
  let signing: TokenKey;
  let verifying: TokenKey;

  beforeEach(async () => {
    const { files } = await generateKeys('EdDSA', dir.path);
    signing = await loadSigningKey({ keyFile: files[0]!, field: '--key' });
    verifying = await loadVerifyingKey({ keyFile: files[1]!, field: '--device-key' });
  });

  it('tokens - keygen writes a private key readable by its owner only, and a public key', async () => {
    assert.equal(statSync(join(dir.path, 'fleet.key')).mode & 0o777, 0o600);
    assert.match(readFileSync(join(dir.path, 'fleet.pub'), 'utf8'), /BEGIN PUBLIC KEY/);
    await assert.rejects(generateKeys('EdDSA', dir.path), /EEXIST/, 'never overwrites keys');
  });

  it('tokens - an EdDSA device token verifies with the public key alone', async () => {
    const token = await issueToken({ key: signing, subject: 'dev-1', audience: DEVICE_AUDIENCE, ttlSeconds: 3600 });
    const result = await new TokenVerifier({ key: verifying, audience: DEVICE_AUDIENCE }).verify(token);
    assert.equal(result.ok, true);
    assert.equal(result.ok && result.claims.sub, 'dev-1');
    assert.ok(result.ok && result.claims.jti.length > 0 && result.claims.exp > result.claims.iat);
  });

  it('tokens - the verifier refuses the private key, and the signer the public one', async () => {
    await assert.rejects(
      loadVerifyingKey({ keyFile: join(dir.path, 'fleet.key'), field: '--device-key' }),
      /--device-key: .* is not a public key/,
    );
    await assert.rejects(
      loadSigningKey({ keyFile: join(dir.path, 'fleet.pub'), field: '--key' }),
      /--key: .* is not a private key/,
    );
  });

  it('tokens - HS256 with a shared secret; a short secret is refused', async () => {
    const { files } = await generateKeys('HS256', dir.path, 'shared');
    const key = await loadSigningKey({ secretFile: files[0]!, field: '--secret-file' });
    const token = await issueToken({ key, subject: 'gw-1', audience: GATEWAY_AUDIENCE, ttlSeconds: 60 });
    assert.equal((await new TokenVerifier({ key, audience: GATEWAY_AUDIENCE }).verify(token)).ok, true);
    writeFileSync(join(dir.path, 'short.secret'), Buffer.alloc(16).toString('base64url'));
    await assert.rejects(
      loadSigningKey({ secretFile: join(dir.path, 'short.secret'), field: '--secret-file' }),
      /--secret-file: .* at least 32 random bytes/,
    );
  });

  it('tokens - each kind of bad token gets its own reason', async () => {
    const verifier = new TokenVerifier({ key: verifying, audience: DEVICE_AUDIENCE });
    const other = await loadSigningKey({
      keyFile: (await generateKeys('EdDSA', join(dir.path, 'other'))).files[0]!,
      field: '--key',
    });
    const hs = await loadSigningKey({ secretFile: (await generateKeys('HS256', dir.path, 'hs')).files[0]!, field: '--key' });
    const now = Math.floor(Date.now() / 1000);
    const cases: Array<[string, Promise<string> | string, string]> = [
      ['missing', '', 'missing'],
      ['malformed', 'not.a.jwt', 'malformed'],
      [
        'signed by another key',
        issueToken({ key: other, subject: 'd', audience: DEVICE_AUDIENCE, ttlSeconds: 60 }),
        'bad-signature',
      ],
      ['another algorithm', issueToken({ key: hs, subject: 'd', audience: DEVICE_AUDIENCE, ttlSeconds: 60 }), 'wrong-algorithm'],
      [
        'expired',
        issueToken({ key: signing, subject: 'd', audience: DEVICE_AUDIENCE, ttlSeconds: 60, now: now - 3600 }),
        'expired',
      ],
      [
        'for the cloud, not a gateway',
        issueToken({ key: signing, subject: 'd', audience: GATEWAY_AUDIENCE, ttlSeconds: 60 }),
        'wrong-audience',
      ],
      [
        'without a jti',
        new SignJWT({})
          .setProtectedHeader({ alg: 'EdDSA' })
          .setSubject('d')
          .setAudience(DEVICE_AUDIENCE)
          .setIssuedAt()
          .setExpirationTime('1h')
          .sign(signing.key),
        'missing-claims',
      ],
      [
        'without an expiry',
        new SignJWT({})
          .setProtectedHeader({ alg: 'EdDSA' })
          .setSubject('d')
          .setAudience(DEVICE_AUDIENCE)
          .setIssuedAt()
          .setJti('j')
          .sign(signing.key),
        'missing-claims',
      ],
    ];
    for (const [what, token, reason] of cases) {
      const result = await verifier.verify(await token);
      assert.equal(result.ok ? 'ok' : result.reason, reason, what);
    }
  });

  it('tokens - a cached verification still expires with the token, and revocation acts at once', async () => {
    let now = Date.now();
    const file = join(dir.path, 'revoked.txt');
    writeFileSync(file, '# nothing revoked yet\n');
    const revocations = new RevocationList(file, '--revocations', false);
    const verifier = new TokenVerifier({ key: verifying, audience: DEVICE_AUDIENCE, revocations, clock: { now: () => now } });
    const token = await issueToken({
      key: signing,
      subject: 'dev-1',
      audience: DEVICE_AUDIENCE,
      ttlSeconds: 60,
      now: Math.floor(now / 1000),
    });
    const first = await verifier.verify(token);
    assert.ok(first.ok);
    assert.equal((await verifier.verify(token)).ok, true, 'from the cache');
    writeFileSync(file, `jti:${first.claims.jti}\n`);
    revocations.reload();
    const revoked = await verifier.verify(token);
    assert.equal(revoked.ok ? 'ok' : revoked.reason, 'revoked');
    writeFileSync(file, 'sub:dev-2\n');
    revocations.reload();
    assert.equal((await verifier.verify(token)).ok, true, 'un-revoked');
    now += 61_000;
    const expired = await verifier.verify(token);
    assert.equal(expired.ok ? 'ok' : expired.reason, 'expired', 'the cache does not outlive the token');
    assert.equal(verifier.stillValid(first.claims), false);
  });

  it('tokens - a revocation file is re-read when it changes; a broken one keeps the last good list', async () => {
    const file = join(dir.path, 'revoked.txt');
    writeFileSync(file, '');
    const list = new RevocationList(file);
    try {
      const changed = once(list, 'changed');
      writeFileSync(file, 'sub:dev-9\n');
      await changed;
      assert.equal(list.isRevoked({ sub: 'dev-9' }), true);
      const failed = once(list, 'error');
      writeFileSync(file, 'sub:dev-9\nnonsense line\n');
      const [err] = (await failed) as [Error];
      assert.match(err.message, /--revocations: .* line 2: "nonsense line" is not jti:<id> or sub:<id>/);
      assert.equal(list.isRevoked({ sub: 'dev-9' }), true, 'the last good list stays');
    } finally {
      list.close();
    }
  });
});
