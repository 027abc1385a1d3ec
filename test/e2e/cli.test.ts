/** The `fleetgate` command as a user runs it: help, refusals that name the flag, export, a clean stop. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SqliteSink } from '@fleetgate/cloud-stub';
import { VERSION } from '@fleetgate/gateway';
import { FLEETGATE_BIN, killAll, startFleetgate } from '../support/fleetgate-process.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { sinkRecord } from '../cloud-stub/sink.contract.ts';

const exec = promisify(execFile);

/** Runs fleetgate to completion; resolves with its exit code and output, whatever the code. */
async function fleetgate(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [FLEETGATE_BIN, ...args], { timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (err: unknown) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe('fleetgate CLI', function () {
  this.timeout(60_000);
  const dir = useTempDir();
  afterEach(() => killAll());

  it('cli - --help lists the subcommands and --version prints the version', async () => {
    const help = await fleetgate('--help');
    assert.equal(help.code, 0);
    for (const command of ['gateway', 'cloud', 'dev']) assert.match(help.stdout, new RegExp(`\\b${command}\\b`));
    assert.equal((await fleetgate('--version')).stdout.trim(), VERSION);
    const gatewayHelp = await fleetgate('gateway', '--help');
    for (const flag of ['--gateway-id', '--mqtt', '--upstream', '--data', '--admin', '--durability', '--allow-anonymous']) {
      assert.ok(gatewayHelp.stdout.includes(flag), flag);
    }
    assert.match((await fleetgate('cloud', '--help')).stdout, /export/);
  });

  it('cli - a gateway with no device authentication refuses to start and says how to opt in', async () => {
    const result = await fleetgate('gateway', '--data', join(dir.path, 'g'), '--mqtt', '127.0.0.1:0', '--admin', '127.0.0.1:0');
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /--device-key: no device authentication is configured: give --device-key FILE .* or --allow-anonymous/,
    );
  });

  it('cli - bad flag values are refused with the flag named', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--mqtt', 'nowhere'], /--mqtt <host:port\|off>.*"nowhere" is not HOST:PORT/],
      [['--allow-anonymous', '--mqtts'], /--mqtts: needs --tls-cert and --tls-key/],
      [['--allow-anonymous', '--device-key', '/nonexistent.pub'], /--allow-anonymous: cannot go with --device-key/],
      [['--device-key', '/nonexistent.pub'], /--device-key: cannot read \/nonexistent.pub: ENOENT/],
      [['--admin', '127.0.0.1:99999'], /--admin <host:port>/],
      [['--durability', 'sometimes'], /--durability.*Allowed choices are power, process/],
      [['--uplink-window', '0'], /--uplink-window <n>.*"0" is not an integer >= 1/],
      [['--gateway-id', 'bad id', '--allow-anonymous'], /--gateway-id: "bad id" must be 1-128 characters/],
      [['--allow-anonymous', '--upstream', '127.0.0.1:1,nowhere'], /--upstream: "nowhere" is not HOST:PORT/],
    ];
    for (const [args, message] of cases) {
      const result = await fleetgate(
        'gateway',
        '--data',
        join(dir.path, 'g'),
        '--mqtt',
        '127.0.0.1:0',
        '--admin',
        '127.0.0.1:0',
        ...args,
      );
      assert.notEqual(result.code, 0, args.join(' '));
      assert.match(result.stderr, message, args.join(' '));
    }
  });

  it('cli - the cloud-stub refuses a JetStream sink without servers, and NATS servers without it, naming the flag', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--sink', 'jetstream'], /--nats: --sink jetstream needs the NATS servers/],
      [['--nats', 'nats://127.0.0.1:4222'], /--nats: only with --sink jetstream/],
      [['--sink', 'jetstream', '--nats', 'http://x'], /--nats: "http:\/\/x" is not nats:\/\/HOST:PORT/],
      [['--sink', 'kafka'], /--sink.*Allowed choices are sqlite, jetstream/],
    ];
    for (const [args, message] of cases) {
      const result = await fleetgate(
        'cloud',
        '--allow-anonymous',
        '--data',
        join(dir.path, 'c'),
        '--listen',
        '127.0.0.1:0',
        '--admin',
        '127.0.0.1:0',
        ...args,
      );
      assert.notEqual(result.code, 0, args.join(' '));
      assert.match(result.stderr, message, args.join(' '));
    }
  });

  it('cli - a port in use is a clear refusal naming the listener', async () => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as { port: number }).port;
    try {
      const result = await fleetgate(
        'gateway',
        '--allow-anonymous',
        '--data',
        join(dir.path, 'g'),
        '--mqtt',
        `127.0.0.1:${port}`,
        '--admin',
        '127.0.0.1:0',
      );
      assert.equal(result.code, 1);
      assert.match(result.stderr, new RegExp(`MQTT listener \\(--mqtt\\) cannot listen on 127.0.0.1:${port}: EADDRINUSE`));
    } finally {
      busy.close();
    }
  });

  it('cli - cloud export prints every committed record as a JSON line, in commit order', async () => {
    const sink = new SqliteSink({ dir: dir.path, durability: 'process' });
    await sink.commit([
      { gatewayId: 'gw-b', records: [sinkRecord(7)] },
      { gatewayId: 'gw-a', records: [sinkRecord(1), sinkRecord(2)] },
    ]);
    await sink.close();
    const result = await fleetgate('cloud', 'export', '--data', dir.path);
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(
      lines.map((l) => `${l.gatewayId}/${l.seq}`),
      ['gw-b/7', 'gw-a/1', 'gw-a/2'],
    );
    assert.deepEqual(Object.keys(lines[0]!).sort(), [
      'contentType',
      'deviceId',
      'deviceSeq',
      'deviceTime',
      'gatewayId',
      'gatewayTime',
      'payload',
      'receivedTime',
      'seq',
      'stream',
    ]);
    assert.equal(Buffer.from(String(lines[0]!.payload), 'base64').toString(), 'payload-7');
  });

  it('cli - cloud export of a folder without a sink fails with a message', async () => {
    const result = await fleetgate('cloud', 'export', '--data', join(dir.path, 'nothing-here'));
    assert.equal(result.code, 1);
    assert.match(result.stderr, /cannot read the sink in .*nothing-here/);
  });

  it('cli - token keygen, issue and inspect: the token verifies, secrets are owner-only files and never printed', async () => {
    const keys = join(dir.path, 'keys');
    const keygen = await fleetgate('token', 'keygen', '--out', keys);
    assert.equal(keygen.code, 0, keygen.stderr);
    assert.equal(statSync(join(keys, 'fleet.key')).mode & 0o777, 0o600);
    const issued = await fleetgate('token', 'issue', '--device', 'sensor-7', '--ttl', '7d', '--key', join(keys, 'fleet.key'));
    assert.equal(issued.code, 0, issued.stderr);
    const token = issued.stdout.trim();
    const inspected = await fleetgate('token', 'inspect', token, '--key', join(keys, 'fleet.pub'));
    assert.equal(inspected.code, 0, inspected.stderr);
    const shown = JSON.parse(inspected.stdout) as Record<string, string>;
    assert.equal(shown.sub, 'sensor-7');
    assert.equal(shown.aud, 'fleetgate-gateway');
    assert.equal(shown.verified, 'valid');
    assert.match(shown.expiresIn!, /^(6|7) days$/);
    const privateKey = readFileSync(join(keys, 'fleet.key'), 'utf8').split('\n')[1]!;
    for (const output of [keygen, issued, inspected])
      assert.ok(!(output.stdout + output.stderr).includes(privateKey), 'no key material printed');
    const gatewayToken = await fleetgate(
      'token',
      'issue',
      '--gateway',
      'gw-1',
      '--ttl',
      '1h',
      '--key',
      join(keys, 'fleet.key'),
      '--out',
      join(dir.path, 'gw.token'),
    );
    assert.equal(gatewayToken.stdout, '', 'with --out the token goes to the file only');
    assert.equal(statSync(join(dir.path, 'gw.token')).mode & 0o777, 0o600);
    const refusals: Array<[string[], RegExp]> = [
      [
        ['issue', '--device', 'a', '--gateway', 'b', '--key', join(keys, 'fleet.key')],
        /give exactly one of --device ID or --gateway ID/,
      ],
      [['issue', '--device', 'bad/id', '--key', join(keys, 'fleet.key')], /--device: "bad\/id" must be/],
      [['issue', '--device', 'a', '--ttl', 'soon', '--key', join(keys, 'fleet.key')], /--ttl: "soon" is not a duration/],
      [['issue', '--device', 'a', '--key', join(keys, 'fleet.pub')], /--key: .* is not a private key/],
      [['issue', '--device', 'a'], /give --key FILE \(Ed25519\) or --secret-file FILE \(HS256\)/],
      [['inspect', 'not-a-token'], /<token>: not a JWT/],
    ];
    for (const [args, message] of refusals) {
      const result = await fleetgate('token', ...args);
      assert.equal(result.code, 1, args.join(' '));
      assert.match(result.stderr, message, args.join(' '));
    }
  });

  it('cli - SIGTERM stops a gateway and a cloud-stub cleanly (exit 0)', async () => {
    const cloud = await startFleetgate(
      'cloud',
      ['cloud', '--allow-anonymous', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--data', join(dir.path, 'c')],
      'cloud-stub ready',
    );
    const gateway = await startFleetgate(
      'gateway',
      [
        'gateway',
        '--allow-anonymous',
        '--mqtt',
        '127.0.0.1:0',
        '--admin',
        '127.0.0.1:0',
        '--data',
        join(dir.path, 'g'),
        '--upstream',
        String(cloud.ready.listen),
      ],
      'gateway ready',
    );
    const stopped = gateway.process.waitForLine((line) => line.msg === 'gateway stopped');
    assert.equal(await gateway.process.stop(), 0);
    await stopped;
    assert.equal(await cloud.process.stop(), 0);
  });
});
