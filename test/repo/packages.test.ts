/**
 * The release tarballs, installed the way each audience installs them, outside this repository: a device
 * project installs the SDK (with and without the SQLite outbox); a site installs the CLI with the gateway only
 * (into its own folder, as docs/raspberry-pi.md does); a lab adds the backend and the simulator beside it. Every process here is plain `node` on
 * the installed JavaScript: no tsx, no TypeScript, no workspace links.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { makeFleetKeys, type FleetKeys } from '../support/fleet-keys.ts';
import { killAll, portOf, startFleetgate, type Started } from '../support/fleetgate-process.ts';
import { waitUntil } from '../support/test-device.ts';
import { installedPackages, npmInstall, packWorkspaces, sqliteVersion, type Tarballs } from '../support/packages.ts';

const run = promisify(execFile);
const TSC = fileURLToPath(new URL('../../node_modules/typescript/bin/tsc', import.meta.url));

/** What only the backend, the simulator or the build bring: none of it belongs on a device or a site. */
const LAB_ONLY = ['nats', 'uplot', 'cli-progress', 'hdr-histogram-js', '@fleetgate/cloud-stub', '@fleetgate/simulators'];
const BUILD_ONLY = ['tsx', 'typescript', 'esbuild', 'ts-proto', '@bufbuild/buf', 'mocha'];
/** What a device must not load (the server side of @fleetgate/common). */
const SERVER_ONLY = [
  'pino',
  'jose',
  'prom-client',
  'better-sqlite3',
  'aedes',
  'lru-cache',
  '@fleetgate/common',
  '@fleetgate/gateway',
];

const names = (dir: string) => new Set(installedPackages(join(dir, 'node_modules')).map((p) => p.name));

/** Runs `node file` in `cwd` with `env`; resolves with stdout, rejects with stderr in the message. */
async function node(cwd: string, file: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  try {
    const { stdout } = await run(process.execPath, [file], { cwd, env: { ...process.env, ...env }, timeout: 30_000 });
    return stdout;
  } catch (err: unknown) {
    const { stderr = '', stdout = '' } = err as { stderr?: string; stdout?: string };
    throw new Error(`node ${file} failed: ${(err as Error).message}\n${stdout}\n${stderr}`);
  }
}

/** A device script: connects with the SDK, sends one reading, prints the SendResult. */
const SEND = (load: string) => `${load}
const outbox = process.env.OUTBOX ? { type: 'sqlite', path: process.env.OUTBOX } : undefined;
const client = connect({ url: process.env.URL, token: process.env.TOKEN, outbox });
client.send({ temp: 21.5, via: process.env.VIA }).then(async (result) => {
  console.log(JSON.stringify(result));
  await client.close();
}, (err) => { console.error(err.name + ': ' + err.message); process.exit(1); });
`;

describe('installed packages (npm pack, then npm install outside the repository)', function () {
  this.timeout(60_000);
  let work: string;
  let tarballs: Tarballs;
  let keys: FleetKeys;
  const sqlite = `better-sqlite3@${sqliteVersion()}`;
  const site = () => join(work, 'site');
  const device = () => join(work, 'device');
  const fleetgate = () => join(site(), 'node_modules/.bin/fleetgate');

  before(async function () {
    this.timeout(240_000);
    work = mkdtempSync(join(tmpdir(), 'fleetgate-packages-'));
    tarballs = await packWorkspaces(work);
    keys = await makeFleetKeys(work);
    const t = (...packages: string[]) => packages.map((name) => tarballs[`@fleetgate/${name}`]!);
    await Promise.all([
      npmInstall(site(), [...t('cli', 'gateway', 'common', 'core', 'protos'), sqlite]),
      npmInstall(device(), t('device-sdk', 'core', 'protos')),
    ]);
  });

  after(async () => {
    await killAll();
    if (work) rmSync(work, { recursive: true, force: true });
  });
  afterEach(() => killAll());

  /** The installed CLI's `fleetgate gateway` on free ports, verifying device tokens with the test's fleet key. */
  let gateways = 0;
  const startGateway = (upstream = '127.0.0.1:1'): Promise<Started> =>
    startFleetgate(
      'gateway',
      [
        'gateway',
        '--gateway-id',
        'gw-installed',
        '--device-key',
        keys.publicKeyFile,
        '--mqtt',
        '127.0.0.1:0',
        '--device-grpc',
        '127.0.0.1:0',
        '--admin',
        '127.0.0.1:0',
        '--upstream',
        upstream,
        '--data',
        join(work, `gateway-${++gateways}`),
      ],
      'gateway ready',
      {},
      fleetgate(),
    );

  it('packages - each workspace packs a tarball of built JavaScript, declarations and no TypeScript sources', async () => {
    for (const [name, file] of Object.entries(tarballs)) {
      const { stdout } = await run('tar', ['tzf', file]);
      const files = stdout.trim().split('\n');
      assert.ok(files.includes('package/dist/index.js') || name === '@fleetgate/cli', `${name} ships dist/index.js`);
      assert.ok(
        files.some((f) => f.endsWith('.d.ts')),
        `${name} ships declarations`,
      );
      assert.deepEqual(
        files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')),
        [],
        `${name} ships no .ts sources`,
      );
      assert.deepEqual(
        files.filter((f) => f.includes('tsbuildinfo') || f.includes('/test/')),
        [],
        `${name} ships no build state or tests`,
      );
    }
  });

  it('device sdk - an empty Node project installs it with nothing of the server side, and a plain node script (import) sends a reading', async () => {
    const installed = names(device());
    for (const name of [...SERVER_ONLY, ...LAB_ONLY, ...BUILD_ONLY])
      assert.ok(!installed.has(name), `${name} is installed with the SDK`);
    const gateway = await startGateway();
    writeFileSync(join(device(), 'send.mjs'), SEND(`import { connect } from '@fleetgate/device-sdk';`));
    const token = await keys.device('installed-esm');
    const out = await node(device(), 'send.mjs', {
      URL: `127.0.0.1:${portOf(gateway.ready.deviceGrpc)}`,
      TOKEN: token,
      VIA: 'import',
    });
    assert.deepEqual(JSON.parse(out), { seq: 1 });
    const stats = (await (await fetch(`http://127.0.0.1:${portOf(gateway.ready.admin)}/v1/stats`)).json()) as {
      journal: { rows: number };
    };
    assert.equal(stats.journal.rows, 1, 'the reading is in the journal');
  });

  it('device sdk - require() works too (Node >= 20.19), and its types check in a strict TypeScript consumer without skipLibCheck', async () => {
    const gateway = await startGateway();
    writeFileSync(join(device(), 'send.cjs'), SEND(`const { connect } = require('@fleetgate/device-sdk');`));
    const out = await node(device(), 'send.cjs', {
      URL: `127.0.0.1:${portOf(gateway.ready.deviceGrpc)}`,
      TOKEN: await keys.device('installed-cjs'),
      VIA: 'require',
    });
    assert.deepEqual(JSON.parse(out), { seq: 1 });

    writeFileSync(
      join(device(), 'consumer.ts'),
      `import { connect, ConnectivityState, type SendResult, type StateChange } from '@fleetgate/device-sdk';
const client = connect({ url: 'gateway.local:50052', getToken: () => 'token', outbox: { type: 'sqlite', path: 'outbox.db' } });
const sent: Promise<SendResult> = client.send({ temp: 21.5 }, { stream: 'env' });
client.on('state', (change: StateChange) => { if (change.state === ConnectivityState.READY) void sent; });
client.onCommand('reboot', async (command) => command.name);
`,
    );
    writeFileSync(
      join(device(), 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          skipLibCheck: false,
          types: ['node'],
        },
        files: ['consumer.ts'],
      }),
    );
    await run(process.execPath, [TSC, '-p', 'tsconfig.json'], { cwd: device() }).catch((err: { stdout?: string }) =>
      assert.fail(`tsc: ${err.stdout}`),
    );
  });

  it('device sdk - the SQLite outbox says to install better-sqlite3 when it is missing, and works once it is installed', async () => {
    const gateway = await startGateway();
    const env = {
      URL: `127.0.0.1:${portOf(gateway.ready.deviceGrpc)}`,
      TOKEN: await keys.device('installed-sqlite'),
      OUTBOX: join(device(), 'outbox.db'),
    };
    writeFileSync(join(device(), 'send.mjs'), SEND(`import { connect } from '@fleetgate/device-sdk';`));
    await assert.rejects(
      node(device(), 'send.mjs', env),
      /SqliteUnavailableError: SQLite storage needs the better-sqlite3 package: npm install better-sqlite3/,
    );
    await npmInstall(device(), [sqlite]);
    assert.deepEqual(JSON.parse(await node(device(), 'send.mjs', env)), { seq: 1 });
    assert.ok(existsSync(env.OUTBOX), 'the outbox file was made');
  });

  it('site - installing the CLI and the gateway brings no backend, simulator or build tools, and `fleetgate gateway` runs from the installed bin', async () => {
    const installed = names(site());
    for (const name of [...LAB_ONLY, ...BUILD_ONLY]) assert.ok(!installed.has(name), `${name} is installed on a site`);
    const { stdout: version } = await run(fleetgate(), ['--version']);
    assert.equal(version.trim(), '0.1.0');
    const gateway = await startGateway();
    const client = await mqtt.connectAsync({
      host: '127.0.0.1',
      port: portOf(gateway.ready.mqtt),
      clientId: 'site-device',
      username: 'site-device',
      password: await keys.device('site-device'),
      reconnectPeriod: 0,
    });
    try {
      await client.publishAsync('devices/site-device/telemetry', '{"temp":3}', { qos: 1 });
    } finally {
      await client.endAsync();
    }
    const { stdout } = await run(fleetgate(), [
      'status',
      '--admin',
      `http://127.0.0.1:${portOf(gateway.ready.admin)}`,
      '--json',
    ]).catch((err: { stdout: string }) => err);
    assert.equal((JSON.parse(stdout) as { stats: { journal: { rows: number } } }).stats.journal.rows, 1);
    await assert.rejects(run(fleetgate(), ['sim', '--devices', '1']), (err: { code: number; stderr: string }) => {
      assert.equal(err.code, 2);
      assert.match(
        err.stderr,
        /fleetgate sim needs @fleetgate\/simulators, not installed here: npm install -g @fleetgate\/simulators/,
      );
      return true;
    });
  });

  it('lab - the backend and the simulator installed beside the CLI: fleetgate cloud, gateway and an SDK device end to end', async function () {
    this.timeout(120_000);
    await npmInstall(site(), [
      tarballs['@fleetgate/cloud-stub']!,
      tarballs['@fleetgate/simulators']!,
      tarballs['@fleetgate/device-sdk']!,
    ]);
    assert.ok(!names(site()).has('tsx'));
    const cloudData = join(work, 'cloud');
    const cloud = await startFleetgate(
      'cloud',
      ['cloud', '--allow-anonymous', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--data', cloudData],
      'cloud-stub ready',
      {},
      fleetgate(),
    );
    const gateway = await startGateway(`127.0.0.1:${portOf(cloud.ready.listen)}`);
    writeFileSync(join(device(), 'send.mjs'), SEND(`import { connect } from '@fleetgate/device-sdk';`));
    await node(device(), 'send.mjs', {
      URL: `127.0.0.1:${portOf(gateway.ready.deviceGrpc)}`,
      TOKEN: await keys.device('lab-device'),
      VIA: 'lab',
    });
    const cloudAdmin = `http://127.0.0.1:${portOf(cloud.ready.admin)}/v1/stats`;
    // The reading was acked by the gateway's journal; the uplink forwards it when it is connected.
    await waitUntil(
      'the reading at the installed cloud-stub',
      async () => ((await (await fetch(cloudAdmin)).json()) as { records: number }).records === 1,
      20_000,
    );
    const { stdout } = await run(fleetgate(), ['cloud', 'export', '--data', cloudData]);
    const [record] = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { deviceId: string });
    assert.equal(record!.deviceId, 'lab-device');
  });
});
