/**
 * `fleetgate token`: make keys, issue device and gateway tokens, look inside a token. Secrets are written to
 * files readable by their owner only, and never printed; `inspect` prints claims, never key material.
 */
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import ms from 'ms';
import { ConfigError } from '@fleetgate/core';
import {
  decodeToken,
  DEVICE_AUDIENCE,
  GATEWAY_AUDIENCE,
  generateKeys,
  issueToken,
  type KeySource,
  loadSigningKey,
  loadVerifyingKey,
  TOKEN_ALGORITHMS,
  type TokenAlgorithm,
  TokenVerifier,
} from '@fleetgate/common';
import { DEVICE_ID } from '@fleetgate/gateway';

export function tokenCommand(): Command {
  const token = new Command('token').description('keys and tokens for devices and gateways');

  token
    .command('keygen')
    .description('make key material: an Ed25519 pair (fleet.key signs, fleet.pub verifies) or an HS256 secret')
    .addOption(
      new Option('--alg <alg>', 'EdDSA: the verifier holds only the public key; HS256: one shared secret')
        .choices(TOKEN_ALGORITHMS as TokenAlgorithm[])
        .default('EdDSA'),
    )
    .option('--out <dir>', 'folder for the key files', './keys')
    .option('--name <name>', 'file name without extension', 'fleet')
    .action(async (flags: { alg: TokenAlgorithm; out: string; name: string }) => {
      await run(async () => {
        const { files } = await generateKeys(flags.alg, flags.out, flags.name);
        process.stdout.write(`wrote ${files.join(', ')}\n`);
        if (flags.alg === 'EdDSA')
          process.stdout.write('give gateways and backends the .pub file only; keep the .key where tokens are issued\n');
      });
    });

  token
    .command('issue')
    .description('issue a token for a device (presented to gateways) or a gateway (presented to the backend)')
    .option('--device <id>', 'a device token: sub = the device id (the MQTT client id)')
    .option('--gateway <id>', 'a gateway token: sub = the gateway id')
    .option('--ttl <duration>', 'lifetime, e.g. 30d, 12h, 15m', '30d')
    .option('--key <file>', 'Ed25519 private key (PEM) to sign with')
    .option('--secret-file <file>', 'HS256 secret to sign with')
    .option('--audience <aud>', `aud claim (default ${DEVICE_AUDIENCE} for devices, ${GATEWAY_AUDIENCE} for gateways)`)
    .option('--out <file>', 'write the token to this file (owner-only) instead of standard output')
    .action(
      async (flags: {
        device?: string;
        gateway?: string;
        ttl: string;
        key?: string;
        secretFile?: string;
        audience?: string;
        out?: string;
      }) => {
        await run(async () => {
          if ((flags.device === undefined) === (flags.gateway === undefined))
            throw new ConfigError('--device', 'give exactly one of --device ID or --gateway ID');
          const subject = (flags.device ?? flags.gateway)!;
          const field = flags.device !== undefined ? '--device' : '--gateway';
          if (!DEVICE_ID.test(subject))
            throw new ConfigError(field, `"${subject}" must be 1-128 characters, none of them / + # or a control character`);
          const ttlMs = ms(flags.ttl as ms.StringValue);
          if (typeof ttlMs !== 'number' || !(ttlMs >= 1000))
            throw new ConfigError('--ttl', `"${flags.ttl}" is not a duration of at least 1s (like 30d, 12h, 15m)`);
          const key = await loadSigningKey(keySource(flags, '--key', '--secret-file'));
          const audience = flags.audience ?? (flags.device !== undefined ? DEVICE_AUDIENCE : GATEWAY_AUDIENCE);
          const jwt = await issueToken({ key, subject, audience, ttlSeconds: Math.floor(ttlMs / 1000) });
          if (flags.out) {
            writeFileSync(flags.out, jwt + '\n', { mode: 0o600 });
            chmodSync(flags.out, 0o600);
            process.stderr.write(`wrote a token for ${subject} to ${flags.out}\n`);
          } else {
            process.stdout.write(jwt + '\n');
          }
        });
      },
    );

  token
    .command('inspect')
    .description("show a token's claims and expiry (never any secret); with a key, also check its signature")
    .argument('<token>', 'the token, or - to read it from standard input (keeps it out of shell history)')
    .option('--key <file>', 'Ed25519 public key (PEM) to verify with')
    .option('--secret-file <file>', 'HS256 secret to verify with')
    .option('--audience <aud>', "audience to verify against (default: the token's own)")
    .action(async (value: string, flags: { key?: string; secretFile?: string; audience?: string }) => {
      await run(async () => {
        const jwt = (value === '-' ? readFileSync(0, 'utf8') : value).trim();
        let decoded: ReturnType<typeof decodeToken>;
        try {
          decoded = decodeToken(jwt);
        } catch {
          throw new ConfigError('<token>', 'not a JWT (three base64url parts separated by dots)');
        }
        const { header, claims } = decoded;
        const exp = typeof claims.exp === 'number' ? claims.exp * 1000 : undefined;
        const out: Record<string, unknown> = {
          alg: header.alg,
          sub: claims.sub,
          aud: claims.aud,
          jti: claims.jti,
          issuedAt: typeof claims.iat === 'number' ? new Date(claims.iat * 1000).toISOString() : undefined,
          expiresAt: exp === undefined ? undefined : new Date(exp).toISOString(),
          expiresIn:
            exp === undefined
              ? undefined
              : exp > Date.now()
                ? ms(exp - Date.now(), { long: true })
                : `expired ${ms(Date.now() - exp, { long: true })} ago`,
        };
        if (flags.key || flags.secretFile) {
          const key = await loadVerifyingKey(keySource(flags, '--key', '--secret-file'));
          const audience = flags.audience ?? (Array.isArray(claims.aud) ? String(claims.aud[0]) : String(claims.aud ?? ''));
          const result = await new TokenVerifier({ key, audience }).verify(jwt);
          out.verified = result.ok ? 'valid' : `refused: ${result.reason} (${result.message})`;
        }
        process.stdout.write(JSON.stringify(out, null, 2) + '\n');
      });
    });

  return token;
}

function keySource(flags: { key?: string; secretFile?: string }, keyField: string, secretField: string): KeySource {
  if (flags.key && flags.secretFile) throw new ConfigError(keyField, `give ${keyField} or ${secretField}, not both`);
  if (flags.key) return { keyFile: flags.key, field: keyField };
  if (flags.secretFile) return { secretFile: flags.secretFile, field: secretField };
  throw new ConfigError(keyField, `give ${keyField} FILE (Ed25519) or ${secretField} FILE (HS256)`);
}

async function run(action: () => Promise<void>): Promise<void> {
  try {
    await action();
  } catch (err: unknown) {
    process.stderr.write(`fleetgate token: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  }
}
