import { ConfigError } from './errors.ts';

export interface HostPort {
  host: string;
  port: number;
}

/**
 * Parses "HOST:PORT", "[v6]:PORT" or ":PORT" (host defaults to `defaultHost`). Port 0 asks the OS for a free
 * port. `field` names the flag or setting in the error message.
 */
export function parseHostPort(field: string, value: string, defaultHost = '127.0.0.1'): HostPort {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value.trim());
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) {
    throw new ConfigError(field, `"${value}" is not HOST:PORT (for example 127.0.0.1:1883, or :0 for any free port)`);
  }
  const host = match[1] ?? match[2] ?? '';
  return { host: host === '' ? defaultHost : host, port };
}

/** "host:port", with brackets around IPv6 hosts: the form a gRPC target or a URL wants. */
export function formatHostPort({ host, port }: HostPort): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
