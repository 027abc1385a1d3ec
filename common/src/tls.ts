/**
 * TLS material from files, for every TLS endpoint of fleetgate: the MQTT listener, the gRPC listeners and the
 * uplink client. Errors name the flag whose file could not be read.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '@fleetgate/core';

export interface TlsServerFiles {
  certFile: string;
  keyFile: string;
  /** CA that client certificates must chain to; required when clientAuth is on. */
  caFile?: string;
  /** mTLS: require a client certificate signed by the CA. */
  clientAuth: boolean;
}

export interface TlsServerMaterial {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
  clientAuth: boolean;
}

export interface TlsClientFiles {
  /** CA that the server's certificate must chain to; the system's roots if absent. */
  caFile?: string;
  /** A client certificate and key, for servers that require mTLS. */
  certFile?: string;
  keyFile?: string;
}

export interface TlsClientMaterial {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** `flags` names the flags of each file, for error messages, e.g. { cert: '--tls-cert', ... }. */
export function loadTlsServer(
  files: TlsServerFiles,
  flags: { cert: string; key: string; ca: string; clientAuth: string },
): TlsServerMaterial {
  if (files.clientAuth && !files.caFile)
    throw new ConfigError(flags.clientAuth, `needs ${flags.ca}: the CA that client certificates must chain to`);
  return {
    cert: readPem(files.certFile, flags.cert),
    key: readPem(files.keyFile, flags.key),
    ...(files.caFile ? { ca: readPem(files.caFile, flags.ca) } : {}),
    clientAuth: files.clientAuth,
  };
}

export function loadTlsClient(files: TlsClientFiles, flags: { ca: string; cert: string; key: string }): TlsClientMaterial {
  if ((files.certFile === undefined) !== (files.keyFile === undefined)) {
    throw new ConfigError(files.certFile ? flags.key : flags.cert, `${flags.cert} and ${flags.key} go together`);
  }
  return {
    ...(files.caFile ? { ca: readPem(files.caFile, flags.ca) } : {}),
    ...(files.certFile ? { cert: readPem(files.certFile, flags.cert) } : {}),
    ...(files.keyFile ? { key: readPem(files.keyFile, flags.key) } : {}),
  };
}

function readPem(file: string, field: string): Buffer {
  let content: Buffer;
  try {
    content = readFileSync(file);
  } catch (err: unknown) {
    throw new ConfigError(field, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!content.includes('-----BEGIN ')) throw new ConfigError(field, `${file} is not PEM (no -----BEGIN line)`);
  return content;
}
