/**
 * The files a gateway reads when it starts (device key, TLS material, ACL, revocation list, upstream CAs and
 * tokens), read here without opening a socket: `fleetgate config check` runs this, and so does `fleetgate gateway`
 * before it starts, so that a refusal names the flag, variable or "file: key" the path was written in.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '@fleetgate/core';
import { loadTlsClient, loadTlsServer, loadVerifyingKey, RevocationList } from '@fleetgate/common';
import { Acl } from '@fleetgate/gateway';
import type { ResolvedGateway } from './gateway-settings.ts';
import { joinProblems } from './settings.ts';
import { upstreamsFromFile } from './upstream-list.ts';

export async function checkGatewayFiles({ options, settings }: ResolvedGateway): Promise<void> {
  const field = (key: string) => settings.field(key);
  const fromFile = upstreamsFromFile(settings);
  const checks: Array<() => unknown> = [
    () => options.deviceKey && loadVerifyingKey(options.deviceKey),
    () =>
      options.tls &&
      loadTlsServer(options.tls, {
        cert: field('tls-cert'),
        key: field('tls-key'),
        ca: field('tls-ca'),
        clientAuth: field('tls-client-auth'),
      }),
    () => options.revocationsFile && new RevocationList(options.revocationsFile, field('revocations'), false).close(),
    () => options.aclFile && Acl.fromFile(options.aclFile, field('acl')),
    ...options.upstreams.map((upstream, i) => () => {
      const fields = fromFile
        ? {
            ca: `upstreams[${i}].tls.ca`,
            cert: `upstreams[${i}].tls.cert`,
            key: `upstreams[${i}].tls.key`,
            token: `upstreams[${i}].token-file`,
          }
        : { ca: field('upstream-ca'), cert: field('upstream-cert'), key: field('upstream-key'), token: field('token-file') };
      if (upstream.tls) loadTlsClient(upstream.tls, fields);
      if (upstream.tokenFile) readToken(upstream.tokenFile, fields.token);
    }),
  ];
  // Every unreadable file at once, each named where its path was written.
  const problems: ConfigError[] = [];
  for (const check of checks) {
    try {
      await check();
    } catch (err: unknown) {
      const renamed = settings.rename(err);
      if (!(renamed instanceof ConfigError)) throw renamed;
      problems.push(renamed);
    }
  }
  if (problems.length > 0) throw joinProblems(problems);
}

/** The uplink re-reads its token at every connection; at start the file must exist and hold one. */
function readToken(file: string, field: string): void {
  let token: string;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (err: unknown) {
    throw new ConfigError(field, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (token === '')
    throw new ConfigError(field, `${file} is empty: it should hold this gateway's token (fleetgate token issue --gateway)`);
}
