/**
 * `fleetgate dev` (what `npm start` runs): the whole local stack on embedded defaults. A cloud-stub and a
 * gateway run as child processes (their JSON logs go to files under the data folder), a few demo devices
 * publish over MQTT, and a status line every few seconds shows what flows where. Everything authenticates as
 * in production: an Ed25519 key pair is made in <data>/keys on first start, the gateway and every device get
 * tokens signed with it, and the banner prints one for a device of your own.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { formatHostPort, type HostPort } from '@fleetgate/core';
import { DEVICE_AUDIENCE, GATEWAY_AUDIENCE, generateKeys, issueToken, loadSigningKey, type TokenKey } from '@fleetgate/common';
import type { CloudStats } from '@fleetgate/cloud-stub';
import { GATEWAY_DEFAULTS, type GatewayStats } from '@fleetgate/gateway';
import { CLOUD_DEFAULTS } from '../config/cloud-settings.ts';
import { hostPortOption, integerOption } from '../config/options.ts';

const BIN = fileURLToPath(new URL('../../bin/fleetgate.js', import.meta.url));

interface DevFlags {
  data: string;
  mqtt: HostPort;
  upstream: HostPort;
  gatewayAdmin: HostPort;
  cloudAdmin: HostPort;
  demoDevices: number;
  demoRate: number;
  statusEvery: number;
}

export function devCommand(): Command {
  return new Command('dev')
    .description('run the local stack: a cloud-stub, a gateway and a few demo devices (what `npm start` runs)')
    .option('--data <dir>', 'data folder (gateway/, cloud/ and logs/ inside)', './data')
    .addOption(hostPortOption('--mqtt <host:port>', 'gateway MQTT listener', GATEWAY_DEFAULTS.mqtt, '0.0.0.0'))
    .addOption(
      hostPortOption('--upstream <host:port>', 'cloud-stub gRPC listener', {
        host: '127.0.0.1',
        port: CLOUD_DEFAULTS.listen.port,
      }),
    )
    .addOption(hostPortOption('--gateway-admin <host:port>', 'gateway admin listener', GATEWAY_DEFAULTS.admin))
    .addOption(hostPortOption('--cloud-admin <host:port>', 'cloud-stub admin listener', CLOUD_DEFAULTS.admin))
    .addOption(integerOption('--demo-devices <n>', 'demo devices publishing (0: none)', 3, 0))
    .addOption(integerOption('--demo-rate <n>', 'messages per second per demo device', 1))
    .addOption(integerOption('--status-every <s>', 'seconds between status lines', 5))
    .action(async (flags: DevFlags) => {
      const data = resolve(flags.data);
      const logs = join(data, 'logs');
      mkdirSync(logs, { recursive: true });
      const keys = join(data, 'keys');
      if (!existsSync(join(keys, 'fleet.key'))) await generateKeys('EdDSA', keys);
      const signingKey = await loadSigningKey({ keyFile: join(keys, 'fleet.key'), field: '--data' });
      const gatewayTokenFile = join(keys, 'gw-dev.token');
      writeFileSync(gatewayTokenFile, (await devToken(signingKey, 'gw-dev', GATEWAY_AUDIENCE)) + '\n', { mode: 0o600 });
      const children: ChildProcess[] = [];
      const stopAll = () => {
        for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
      };
      process.on('exit', stopAll);

      const cloud = startChild(
        'cloud',
        [
          'cloud',
          'serve',
          '--listen',
          formatHostPort(flags.upstream),
          '--admin',
          formatHostPort(flags.cloudAdmin),
          '--data',
          join(data, 'cloud'),
          '--gateway-key',
          join(keys, 'fleet.pub'),
        ],
        logs,
      );
      children.push(cloud);
      await waitHealthy('cloud-stub', cloud, flags.cloudAdmin, join(logs, 'cloud.log'));

      const gateway = startChild(
        'gateway',
        [
          'gateway',
          '--gateway-id',
          'gw-dev',
          '--device-key',
          join(keys, 'fleet.pub'),
          '--token-file',
          gatewayTokenFile,
          '--mqtt',
          formatHostPort(flags.mqtt),
          '--upstream',
          formatHostPort(flags.upstream),
          '--admin',
          formatHostPort(flags.gatewayAdmin),
          '--data',
          join(data, 'gateway'),
        ],
        logs,
      );
      children.push(gateway);
      await waitHealthy('gateway', gateway, flags.gatewayAdmin, join(logs, 'gateway.log'));

      const mqttHost = flags.mqtt.host === '0.0.0.0' ? '127.0.0.1' : flags.mqtt.host;
      printBanner(flags, data, mqttHost, await devToken(signingKey, 'my-sensor', DEVICE_AUDIENCE));
      const demoTokens = await Promise.all(
        Array.from({ length: flags.demoDevices }, (_, i) => devToken(signingKey, `demo-${i + 1}`, DEVICE_AUDIENCE)),
      );
      const { startDemoDevices } = await import('@fleetgate/simulators');
      const demo = startDemoDevices(mqttHost, flags.mqtt.port, demoTokens, flags.demoRate);
      const status = startStatus(flags, flags.statusEvery);

      let stopping = false;
      const stop = async () => {
        if (stopping) process.exit(1);
        stopping = true;
        process.stdout.write('\nstopping: demo devices, gateway, cloud-stub ...\n');
        clearInterval(status);
        await demo();
        await stopChild(gateway);
        await stopChild(cloud);
        process.exit(0);
      };
      for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void stop());
      for (const [name, child] of [
        ['gateway', gateway],
        ['cloud-stub', cloud],
      ] as const) {
        child.once('exit', (code, signal) => {
          if (stopping) return;
          process.stderr.write(
            `\n${name} exited (${signal ?? code}); last lines of its log:\n${tail(join(logs, `${name === 'gateway' ? 'gateway' : 'cloud'}.log`))}\n`,
          );
          stopAll();
          process.exit(1);
        });
      }
    });
}

function startChild(name: string, args: string[], logs: string): ChildProcess {
  const log = createWriteStream(join(logs, `${name}.log`), { flags: 'a' });
  // Their own process group: Ctrl-C in the terminal reaches only this process, which then stops them in order
  // (otherwise each child would see the terminal's SIGINT and then our SIGTERM as a second, forcing signal).
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  return child;
}

async function waitHealthy(name: string, child: ChildProcess, admin: HostPort, logFile: string): Promise<void> {
  const url = `http://${formatHostPort(admin)}/healthz`;
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  process.stderr.write(`${name} did not start; last lines of ${logFile}:\n${tail(logFile)}\n`);
  child.kill('SIGKILL');
  process.exit(1);
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Tokens of the local stack last 30 days. */
function devToken(key: TokenKey, subject: string, audience: string): Promise<string> {
  return issueToken({ key, subject, audience, ttlSeconds: 30 * 24 * 3600 });
}

function printBanner(flags: DevFlags, data: string, mqttHost: string, token: string): void {
  const port = flags.mqtt.port;
  process.stdout.write(`
fleetgate local stack is up
  cloud-stub  gRPC ${formatHostPort(flags.upstream)}   admin http://${formatHostPort(flags.cloudAdmin)}/v1/stats   data ${join(data, 'cloud')}
  gateway     MQTT ${formatHostPort(flags.mqtt)}   admin http://${formatHostPort(flags.gatewayAdmin)}/v1/stats   data ${join(data, 'gateway')}
  demo        ${flags.demoDevices} devices, ${flags.demoRate} msg/s each          logs ${join(data, 'logs')}

publish as device my-sensor (its token is the password; the client id must be the device id):
  export TOKEN=${token}
  mosquitto_pub -h ${mqttHost} -p ${port} -i my-sensor -u my-sensor -P "$TOKEN" -q 1 -t devices/my-sensor/telemetry -m '{"temp":21.5}'
  npx mqtt pub -h ${mqttHost} -p ${port} -i my-sensor -u my-sensor -P "$TOKEN" -q 1 -t devices/my-sensor/telemetry/vibration -m 'hello'
a token for another device:
  npx fleetgate token issue --device sensor-2 --ttl 7d --key ${join(data, 'keys', 'fleet.key')}
a command to a demo device (they answer "ping"):
  npx fleetgate cloud command --device demo-1 --name ping --payload '"hello"' --wait
the device SDK (device-sdk/README.md) connects to 127.0.0.1:50052
see what arrived:
  npx fleetgate cloud export --data ${join(data, 'cloud')} | tail -3
stop with Ctrl-C

`);
}

function startStatus(flags: DevFlags, everySeconds: number): NodeJS.Timeout {
  let previous: { at: number; ingress: number; cloud: number } | undefined;
  return setInterval(async () => {
    try {
      const [gw, cloud] = await Promise.all([
        fetch(`http://${formatHostPort(flags.gatewayAdmin)}/v1/stats`).then((r) => r.json() as Promise<GatewayStats>),
        fetch(`http://${formatHostPort(flags.cloudAdmin)}/v1/stats`).then((r) => r.json() as Promise<CloudStats>),
      ]);
      const now = Date.now();
      const ingress = gw.ingress.messages;
      const records = cloud.records;
      const rate = (current: number, before: number | undefined) =>
        previous && before !== undefined ? ((current - before) / ((now - previous.at) / 1000)).toFixed(1) : '-';
      const line = [
        new Date(now).toLocaleTimeString(),
        `devices ${gw.devicesConnected}`,
        `ingress ${ingress} (${rate(ingress, previous?.ingress)}/s)`,
        `journal ${gw.journal.rows} rows`,
        gw.upstreams.map((u) => `${u.name} ${u.state}, acked ${u.ackedThrough}`).join(', '),
        `cloud ${records} records (${rate(records, previous?.cloud)}/s), ${cloud.duplicates} duplicates ignored`,
      ].join(' | ');
      previous = { at: now, ingress, cloud: records };
      process.stdout.write(line + '\n');
    } catch (err: unknown) {
      process.stdout.write(`status unavailable: ${err instanceof Error ? err.message : String(err)}\n`);
    }
  }, everySeconds * 1000);
}
