/**
 * Debian's mosquitto as a baseline broker: found at /usr/sbin/mosquitto or on PATH, started as a child with a
 * config file of its own in a temp dir, stopped by pid. mosquitto 2.0 listens only where a `listener` line
 * says, and cannot take port 0: a free port is found first (bind 0, read it, close), and on EADDRINUSE (someone
 * took it meanwhile) another one is tried.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { track, type ChildServer } from './children.ts';

/** The mosquitto binary, or undefined with why not. */
export function findMosquitto(): { bin: string; why?: undefined } | { bin?: undefined; why: string } {
  const candidates = [
    '/usr/sbin/mosquitto',
    ...(process.env.PATH ?? '')
      .split(delimiter)
      .filter(Boolean)
      .map((dir) => join(dir, 'mosquitto')),
  ];
  for (const bin of candidates) {
    try {
      accessSync(bin, constants.X_OK);
      return { bin };
    } catch {
      // not there
    }
  }
  return { why: 'no mosquitto at /usr/sbin/mosquitto or on PATH (Debian: apt-get install mosquitto)' };
}

/**
 * The settings: no persistence, anonymous clients, no limit on connections or on QoS 1/2 messages in flight
 * to a subscriber (`max_inflight_messages` counts outgoing messages only: a publisher's own QoS 1 publishes
 * are acknowledged as they arrive), only errors and warnings logged. TCP_NODELAY stays at mosquitto's default
 * (off), unlike aedes and the gateway: here it made mosquitto slower (about 51k vs 63k msg/s with the e2e
 * load: each PUBACK its own segment), and the baseline should be mosquitto at its best.
 */
function config(port: number): string {
  return [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    'max_connections -1',
    'max_inflight_messages 0',
    'max_queued_messages 0',
    'persistence false',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    '',
  ].join('\n');
}

/** Starts mosquitto; its config goes in a temp dir under `parentDir` (default: the system's), removed by stop(). */
export async function startMosquitto(bin: string, parentDir = tmpdir()): Promise<ChildServer> {
  const dir = mkdtempSync(join(parentDir, 'fleetgate-bench-mosquitto-'));
  try {
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const file = join(dir, 'mosquitto.conf');
      writeFileSync(file, config(port));
      const child = spawn(bin, ['-c', file], { stdio: ['ignore', 'ignore', 'pipe'] });
      const stop = track(child);
      let stderr = '';
      child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const exited = once(child, 'exit');
      const up = await Promise.race([exited.then(() => false), acceptsConnections(port, 5000)]);
      if (up) {
        return {
          port,
          pid: child.pid!,
          stop: async () => {
            await stop();
            rmSync(dir, { recursive: true, force: true });
          },
        };
      }
      await stop();
      if (!stderr.includes('Address already in use') || attempt === 5)
        throw new Error(`mosquitto did not start: ${stderr.trim() || 'no output'}`);
    }
  } catch (err: unknown) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** A port nothing listens on right now (it may be taken before it is used: callers retry on EADDRINUSE). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return address.port;
}

/** Resolves true once a TCP connection to the port succeeds, false after `timeoutMs`. */
async function acceptsConnections(port: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = createConnection(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}
