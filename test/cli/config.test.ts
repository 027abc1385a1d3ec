/**
 * Configuration of `fleetgate gateway` and `fleetgate cloud`: a YAML file, FLEETGATE_* variables over it, flags
 * over both; refusals that name the field, the value and what was expected; `fleetgate config check`; the
 * annotated examples in deploy/ cover every setting and pass the check.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { resolveCloudOptions, cloudServeSettingsCommand } from '../../cli/src/config/cloud-settings.ts';
import { gatewaySettingsCommand, resolveGatewayOptions } from '../../cli/src/config/gateway-settings.ts';
import { settingKeys } from '../../cli/src/config/settings.ts';
import { makeFleetKeys } from '../support/fleet-keys.ts';
import { FLEETGATE_BIN, killAll, startFleetgate } from '../support/fleetgate-process.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { unknownVariables } from '../../cli/src/config/unknown-variables.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const EXAMPLES = { gateway: join(ROOT, 'deploy/gateway.example.yaml'), cloud: join(ROOT, 'deploy/cloud.example.yaml') };
const exec = promisify(execFile);

/** Runs `fleetgate ...args` to completion: exit code and output, whatever the code. */
async function fleetgate(args: string[], cwd?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [FLEETGATE_BIN, ...args], {
      timeout: 20_000,
      ...(cwd ? { cwd } : {}),
    });
    return { code: 0, stdout, stderr };
  } catch (err: unknown) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** The error `fn` throws, which must match `message`. */
function refusal(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.match((err as Error).message, message);
    return true;
  });
}

const TWO_UPSTREAMS = `
upstreams:
  - name: alarms
    address: [alarms-1.example.net:50051, alarms-2.example.net:50051]
    tls: { ca: ca.pem, server-name: alarms.example.net }
    token-file: tokens/alarms.token
  - name: bulk
    address: bulk.example.net:443,bulk-2.example.net:443
    tls: true
routes:
  - topic: devices/+/telemetry/alarms/#
    to: alarms
  - topic: devices/+/telemetry/#
    to: [bulk]
`;

describe('config - settings from a file, variables and flags', function () {
  this.timeout(10_000);
  const dir = useTempDir('fleetgate-config-');
  const file = (text: string, name = 'g.yaml') => {
    const path = join(dir.path, name);
    writeFileSync(path, text);
    return path;
  };

  it('config - a file gives the gateway its options; relative paths are relative to the file', () => {
    const path = file(`
gateway-id: gw-site-17
mqtt: 127.0.0.1:1884
mqtts: true
tls-cert: tls/gw.crt
tls-key: tls/gw.key
device-grpc: off
data: journal
durability: process
device-key: keys/device.pub
journal-max-bytes: 500MB
journal-max-age: 7d
journal-full: reject-new
max-connections: 50
forget-upstreams: [old]
${TWO_UPSTREAMS}`);
    const { options, logLevel } = resolveGatewayOptions(['--config', path]);
    assert.equal(options.gatewayId, 'gw-site-17');
    assert.deepEqual(options.mqtt, { host: '127.0.0.1', port: 1884 });
    assert.deepEqual(options.mqtts, { host: '0.0.0.0', port: 8883 });
    assert.deepEqual(options.tls, {
      certFile: join(dir.path, 'tls/gw.crt'),
      keyFile: join(dir.path, 'tls/gw.key'),
      clientAuth: false,
    });
    assert.equal(options.deviceGrpc, null);
    assert.equal(options.dataDir, join(dir.path, 'journal'));
    assert.equal(options.durability, 'process');
    assert.deepEqual(options.deviceKey, { keyFile: join(dir.path, 'keys/device.pub'), field: `${path}: device-key` });
    assert.deepEqual(options.journalLimits, { maxBytes: 500e6, maxAgeMs: 7 * 86_400_000, policy: 'reject-new' });
    assert.equal(options.maxConnections, 50);
    assert.deepEqual(options.forgetUpstreams, ['old']);
    assert.deepEqual(options.upstreams, [
      {
        name: 'alarms',
        addresses: ['alarms-1.example.net:50051', 'alarms-2.example.net:50051'],
        tls: { caFile: join(dir.path, 'ca.pem'), serverName: 'alarms.example.net' },
        tokenFile: join(dir.path, 'tokens/alarms.token'),
      },
      { name: 'bulk', addresses: ['bulk.example.net:443', 'bulk-2.example.net:443'], tls: {} },
    ]);
    assert.deepEqual(options.routes, [
      { topic: 'devices/+/telemetry/alarms/#', to: ['alarms'] },
      { topic: 'devices/+/telemetry/#', to: ['bulk'] },
    ]);
    assert.equal(logLevel, 'info');
  });

  it('config - without a file, the defaults: one upstream named default at 127.0.0.1:50051', () => {
    const { options } = resolveGatewayOptions(['--allow-anonymous']);
    assert.deepEqual(options.upstreams, [{ name: 'default', addresses: ['127.0.0.1:50051'] }]);
    assert.deepEqual(options.routes, []);
    assert.equal(options.journalLimits.maxBytes, 1e9);
    assert.deepEqual(options.mqtt, { host: '0.0.0.0', port: 1883 });
  });

  it('config - uplink-dead-after-ms bounds dead-backend detection: 20 s by default, a flag, a variable or a file key', () => {
    assert.equal(resolveGatewayOptions(['--allow-anonymous']).options.uplink.deadAfterMs, 20_000);
    assert.equal(resolveGatewayOptions(['--allow-anonymous', '--uplink-dead-after-ms', '6000']).options.uplink.deadAfterMs, 6000);
    assert.equal(
      resolveGatewayOptions(['--allow-anonymous'], { FLEETGATE_UPLINK_DEAD_AFTER_MS: '7000' }).options.uplink.deadAfterMs,
      7000,
    );
    assert.equal(
      resolveGatewayOptions(['--config', file('allow-anonymous: true\nuplink-dead-after-ms: 8000\n')]).options.uplink.deadAfterMs,
      8000,
    );
    refusal(() => resolveGatewayOptions(['--allow-anonymous', '--uplink-dead-after-ms', '1']), /"1" is not an integer >= 2/);
  });

  it('config - --mqtt off with the device link on is a gateway for SDK devices only; with nothing to listen on it is refused', () => {
    const { options } = resolveGatewayOptions(['--allow-anonymous', '--mqtt', 'off']);
    assert.ok(!options.mqtt, 'no MQTT listener');
    assert.deepEqual(options.deviceGrpc, { host: '0.0.0.0', port: 50052 });
    refusal(
      () => resolveGatewayOptions(['--allow-anonymous', '--mqtt', 'off', '--device-grpc', 'off']),
      /^--mqtt: no device listener: --mqtt off needs --mqtts, --ws, --wss or --device-grpc/,
    );
  });

  it('config - a flag wins over its FLEETGATE_ variable, which wins over the file', () => {
    const path = file(
      'allow-anonymous: true\nmax-connections: 10\njournal-max-bytes: 1MB\nadmin: 127.0.0.1:1000\njournal-full: reject-new\nupstream-tls: false\n',
    );
    const env = {
      FLEETGATE_MAX_CONNECTIONS: '20',
      FLEETGATE_JOURNAL_MAX_BYTES: '2MiB',
      FLEETGATE_ADMIN: '127.0.0.1:2000',
      FLEETGATE_JOURNAL_FULL: 'drop-oldest',
      FLEETGATE_UPSTREAM_TLS: 'true',
    };
    const flags = [
      '--max-connections',
      '30',
      '--journal-max-bytes',
      '3KB',
      '--admin',
      '127.0.0.1:3000',
      '--journal-full',
      'reject-new',
    ];
    const pick = ({ options: o }: ReturnType<typeof resolveGatewayOptions>) => [
      o.maxConnections,
      o.journalLimits.maxBytes,
      o.admin?.port,
      o.journalLimits.policy,
      o.upstreams[0]!.tls,
    ];
    assert.deepEqual(pick(resolveGatewayOptions(['--config', path])), [10, 1e6, 1000, 'reject-new', undefined]);
    assert.deepEqual(pick(resolveGatewayOptions(['--config', path], env)), [20, 2 * 1024 ** 2, 2000, 'drop-oldest', {}]);
    assert.deepEqual(pick(resolveGatewayOptions(['--config', path, ...flags], env)), [30, 3000, 3000, 'reject-new', {}]);
    // A boolean variable takes true or false: false turns off what the file turned on.
    assert.equal(
      resolveGatewayOptions(['--config', file('upstream-tls: true\nallow-anonymous: true\n')], {
        FLEETGATE_UPSTREAM_TLS: 'false',
      }).options.upstreams[0]!.tls,
      undefined,
    );
  });

  it('config - FLEETGATE_CONFIG names the file, --config wins over it; FLEETGATE_LOG_LEVEL still sets the level', () => {
    const a = file('allow-anonymous: true\ngateway-id: gw-a\n', 'a.yaml');
    const b = file('allow-anonymous: true\ngateway-id: gw-b\n', 'b.yaml');
    assert.equal(resolveGatewayOptions([], { FLEETGATE_CONFIG: a }).options.gatewayId, 'gw-a');
    assert.equal(resolveGatewayOptions(['--config', b], { FLEETGATE_CONFIG: a }).options.gatewayId, 'gw-b');
    assert.equal(resolveGatewayOptions([], { FLEETGATE_CONFIG: a, FLEETGATE_LOG_LEVEL: 'warn' }).logLevel, 'warn');
  });

  it("config - --upstream (flag or variable) replaces the file's upstreams and routes with one named default", () => {
    const path = file(`allow-anonymous: true\n${TWO_UPSTREAMS}`);
    for (const [argv, env] of [
      [['--upstream', '10.0.0.1:50051'], {}],
      [[], { FLEETGATE_UPSTREAM: '10.0.0.1:50051' }],
    ] as const) {
      const { options } = resolveGatewayOptions(['--config', path, ...argv], env);
      assert.deepEqual(options.upstreams, [{ name: 'default', addresses: ['10.0.0.1:50051'] }]);
      assert.deepEqual(options.routes, []);
    }
    refusal(
      () => resolveGatewayOptions(['--config', path, '--token-file', 't']),
      /^--token-file: belongs to --upstream, which is not given, and .*g\.yaml has upstreams:/,
    );
    refusal(
      () => resolveGatewayOptions(['--config', file(`upstream: 10.0.0.1:1\n${TWO_UPSTREAMS}`)]),
      /g\.yaml: upstream: cannot go with upstreams: in the same file/,
    );
  });

  it('config - each kind of mistake in the file is refused naming the file, the key, the value and what was expected', () => {
    const anonymous = 'allow-anonymous: true\n';
    const cases: Array<[string, RegExp]> = [
      ['jounal-max-bytes: 1GB\n', /g\.yaml: jounal-max-bytes: unknown setting; did you mean journal-max-bytes\?/],
      ['colour: blue\n', /g\.yaml: colour: unknown setting$/],
      [`${anonymous}mqtt: { host: x }\n`, /g\.yaml: mqtt: a mapping is not a value for --mqtt <host:port\|off>/],
      ['allow-anonymous: "yes"\n', /g\.yaml: allow-anonymous: "yes" is not true or false/],
      [`${anonymous}max-connections: lots\n`, /g\.yaml: max-connections: "lots" is not an integer >= 1/],
      [
        `${anonymous}journal-max-bytes: lots\n`,
        /g\.yaml: journal-max-bytes: "lots" is not a size \(like 500MB, 2GiB, or bytes\)/,
      ],
      [`${anonymous}journal-max-age: soon\n`, /g\.yaml: journal-max-age: "soon" is not a duration \(like 7d, 12h, 30m, or 0\)/],
      [`${anonymous}durability: sometimes\n`, /g\.yaml: durability: "sometimes" is not one of power, process/],
      [`${anonymous}admin: nowhere\n`, /g\.yaml: admin: "nowhere" is not HOST:PORT/],
      [`${anonymous}gateway-id: bad id\n`, /g\.yaml: gateway-id: "bad id" must be 1-128 characters/],
      [`${anonymous}upstreams: main\n`, /g\.yaml: upstreams: "main" is not a list of upstreams/],
      [
        `${anonymous}upstreams:\n  - { name: a, adress: x:1 }\n`,
        /g\.yaml: upstreams\[0\]\.adress: unknown setting; did you mean address\?/,
      ],
      [
        `${anonymous}upstreams:\n  - { name: a, address: "a:1" }\n  - { name: b, address: nowhere }\n`,
        /g\.yaml: upstreams\[1\]\.address: "nowhere" is not HOST:PORT/,
      ],
      [
        `${anonymous}upstreams:\n  - { name: a, address: "a:1" }\n  - { name: a, address: "b:1" }\n`,
        /g\.yaml: upstreams\[1\]\.name: "a" names two upstreams/,
      ],
      [
        `${anonymous}upstreams:\n  - { name: a, address: "a:1", tls: yes }\n`,
        /g\.yaml: upstreams\[0\]\.tls: "yes" is not true, or a mapping of ca, cert, key, server-name/,
      ],
      [
        `${anonymous}upstreams:\n  - { name: a, address: "a:1" }\nroutes:\n  - { topic: "devices/+/telemetry/#", to: archive }\n`,
        /g\.yaml: routes\[0\]\.to: "archive" is not an upstream \(upstreams: a\)/,
      ],
      [`${anonymous}forget-upstreams: [default]\n`, /g\.yaml: forget-upstreams: "default" is a configured upstream/],
      ['mqtt: 1\nmqtt: 2\n', /g\.yaml:2:1: not valid YAML: Map keys must be unique/],
      ['a: 1\nb: [1, 2\nc: x\n', /g\.yaml:3:1: not valid YAML/],
      ['- a\n- b\n', /g\.yaml: must be a mapping of settings/],
    ];
    for (const [text, message] of cases) refusal(() => resolveGatewayOptions(['--config', file(text)]), message);
  });

  it('config - several mistakes in a file are all reported at once', () => {
    refusal(
      () => resolveGatewayOptions(['--config', file('jounal-full: x\nmqtt: nowhere\ndurability: x\n')]),
      /jounal-full: unknown setting; did you mean journal-full\?\n.*g\.yaml: mqtt: "nowhere".*\n.*g\.yaml: durability: "x"/,
    );
  });

  it('config - a bad variable is refused naming the variable, a bad flag naming the flag', () => {
    const env = (vars: Record<string, string>) => () => resolveGatewayOptions(['--allow-anonymous'], vars);
    refusal(env({ FLEETGATE_JOURNAL_MAX_BYTES: 'lots' }), /^FLEETGATE_JOURNAL_MAX_BYTES: "lots" is not a size/);
    refusal(env({ FLEETGATE_TLS_CLIENT_AUTH: 'yes' }), /^FLEETGATE_TLS_CLIENT_AUTH: "yes" is not true or false/);
    refusal(env({ FLEETGATE_UPSTREAM: '127.0.0.1:1,nowhere' }), /^FLEETGATE_UPSTREAM: "nowhere" is not HOST:PORT/);
    refusal(env({ FLEETGATE_GATEWAY_ID: 'bad id' }), /^FLEETGATE_GATEWAY_ID: "bad id" must be/);
    refusal(
      () => resolveGatewayOptions(['--journal-max-bytes', 'lots']),
      /option '--journal-max-bytes <size>' argument 'lots' is invalid\. "lots" is not a size/,
    );
    refusal(() => resolveGatewayOptions(['--allow-anonymous', '--gateway-id', 'bad id']), /^--gateway-id: "bad id" must be/);
  });

  it('config - FLEETGATE_* variables that are no setting are found, with the one probably meant', () => {
    assert.deepEqual(
      unknownVariables({
        FLEETGATE_JOURNAL_MAX_BYTE: '1',
        FLEETGATE_CREDIT: '4',
        FLEETGATE_LOG_FORMAT: 'json',
        FLEETGATE_WHATEVER: 'x',
        PATH: '/bin',
      }),
      [{ name: 'FLEETGATE_JOURNAL_MAX_BYTE', didYouMean: 'FLEETGATE_JOURNAL_MAX_BYTES' }, { name: 'FLEETGATE_WHATEVER' }],
    );
  });

  it('config - the cloud-stub takes the same kind of file, variables and flags', () => {
    const path = file(
      'listen: 127.0.0.1:50000\ndata: sink\ngateway-key: keys/gw.pub\ncredit: 8\nsink: jetstream\nnats: [nats://a:4222, nats://b:4222]\n',
      'c.yaml',
    );
    const { options } = resolveCloudOptions(['--config', path]);
    assert.deepEqual(options.listen, { host: '127.0.0.1', port: 50000 });
    assert.equal(options.dataDir, join(dir.path, 'sink'));
    assert.deepEqual(options.gatewayKey, { keyFile: join(dir.path, 'keys/gw.pub'), field: `${path}: gateway-key` });
    assert.deepEqual(options.backend, { kind: 'jetstream', servers: ['nats://a:4222', 'nats://b:4222'] });
    assert.equal(resolveCloudOptions(['--config', path], { FLEETGATE_CREDIT: '4' }).options.credit, 4);
    assert.equal(resolveCloudOptions(['--config', path, '--credit', '2'], { FLEETGATE_CREDIT: '4' }).options.credit, 2);
    refusal(
      () => resolveCloudOptions(['--config', file('allow-anonymous: true\nsink: kafka\n', 'c.yaml')]),
      /c\.yaml: sink: "kafka" is not one of sqlite, jetstream/,
    );
    refusal(
      () => resolveCloudOptions(['--config', file('allow-anonymous: true\nnats: nats://a:4222\n', 'c.yaml')]),
      /c\.yaml: nats: only with --sink jetstream/,
    );
    refusal(
      () => resolveCloudOptions(['--config', file('allow-anonymous: true\nupstreams: []\n', 'c.yaml')]),
      /c\.yaml: upstreams: unknown setting/,
    );
  });

  it('config - each example in deploy/ names every setting of its command', () => {
    for (const [kind, command, extra] of [
      ['gateway', gatewaySettingsCommand(), ['upstreams', 'routes']],
      ['cloud', cloudServeSettingsCommand(), []],
    ] as const) {
      const text = readFileSync(EXAMPLES[kind], 'utf8');
      for (const key of [...settingKeys(command), ...extra]) {
        assert.match(
          text,
          new RegExp(`^(# )?${key}:`, 'm'),
          `deploy/${kind}.example.yaml does not show ${key} (with its default and a comment)`,
        );
      }
    }
  });
});

describe('config - fleetgate config check and a start from a file (child processes)', function () {
  this.timeout(30_000);
  const dir = useTempDir('fleetgate-config-cli-');
  afterEach(() => killAll());

  /**
   * The example, with its /etc/fleetgate/ paths moved into the temp folder and a stand-in at each: a real public
   * key for *.pub, an empty ACL and revocation list, a token, and PEM text for certificates and keys.
   */
  async function materialize(kind: 'gateway' | 'cloud'): Promise<string> {
    const root = join(dir.path, kind, 'etc');
    const text = readFileSync(EXAMPLES[kind], 'utf8').replaceAll('/etc/fleetgate/', `${root}/`);
    mkdirSync(root, { recursive: true });
    const keys = await makeFleetKeys(join(dir.path, kind));
    for (const path of new Set(text.match(new RegExp(`${root}/[^\\s,\\]]+`, 'g')))) {
      mkdirSync(dirname(path), { recursive: true });
      if (path.endsWith('.pub')) copyFileSync(keys.publicKeyFile, path);
      else if (path.endsWith('acl.yaml'))
        writeFileSync(path, 'rules:\n  - allow: [publish, subscribe]\n    topic: devices/{deviceId}/#\n');
      else if (path.endsWith('.token')) writeFileSync(path, `${await keys.gateway('gw-site-17')}\n`);
      else if (/\.(pem|crt|key)$/.test(path))
        writeFileSync(path, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
      else writeFileSync(path, '');
    }
    const file = join(dir.path, `${kind}.yaml`);
    writeFileSync(file, text);
    return file;
  }

  it('config - check accepts both examples (their files present) and prints what would run', async () => {
    const [gateway, cloud] = await Promise.all([materialize('gateway'), materialize('cloud')]);
    const [g, c] = await Promise.all([fleetgate(['config', 'check', gateway]), fleetgate(['config', 'check', cloud])]);
    assert.equal(g.code, 0, g.stderr);
    assert.match(g.stdout, new RegExp(`^${gateway}: ok \\(fleetgate gateway\\)`));
    assert.match(
      g.stdout,
      /listeners: MQTT 0\.0\.0\.0:1883, MQTT\/TLS 0\.0\.0\.0:8883, device link 0\.0\.0\.0:50052 \(TLS\), admin 127\.0\.0\.1:9180/,
    );
    assert.match(
      g.stdout,
      /upstreams: alarms -> alarms-1\.example\.net:50051, alarms-2\.example\.net:50051 \(mTLS\), token; bulk -> bulk\.example\.net:443 \(TLS\), token/,
    );
    assert.match(g.stdout, /routes .*: devices\/\+\/telemetry\/alarms\/# -> alarms; devices\/\+\/telemetry\/# -> bulk/);
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, new RegExp(`^${cloud}: ok \\(fleetgate cloud\\)`));
    assert.match(c.stdout, /sink: SQLite in \/var\/lib\/fleetgate\/cloud/);
  });

  it('config - check refuses a bad file with exit 1 and every error, and a wrong command line with exit 2', async () => {
    const bad = join(dir.path, 'bad.yaml');
    writeFileSync(
      bad,
      `device-key: missing.pub\njournal-max-bytes: 5MB\nupstreams:\n  - { name: main, address: "a:1", token-file: none.token }\n`,
    );
    const typo = join(dir.path, 'typo.yaml');
    writeFileSync(typo, 'allow-anonymous: true\njournal-max-bytes: lots\n');
    const [missing, wrong, usage] = await Promise.all([
      fleetgate(['config', 'check', bad]),
      fleetgate(['config', 'check', typo]),
      fleetgate(['config', 'check']),
    ]);
    assert.equal(missing.code, 1);
    assert.equal(missing.stdout, '');
    assert.match(
      missing.stderr,
      /bad\.yaml: device-key: cannot read .*missing\.pub: ENOENT\n.*bad\.yaml: upstreams\[0\]\.token-file: cannot read .*none\.token: ENOENT/,
    );
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /typo\.yaml: journal-max-bytes: "lots" is not a size \(like 500MB, 2GiB, or bytes\)/);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /missing required argument 'file'/);
  });

  it("config - fleetgate gateway --config starts with the file's settings, a FLEETGATE_ variable over them", async () => {
    const file = join(dir.path, 'gateway.yaml');
    writeFileSync(
      file,
      'gateway-id: gw-from-file\nmqtt: 127.0.0.1:0\ndevice-grpc: 127.0.0.1:0\nadmin: 127.0.0.1:0\ndata: journal\ndurability: process\nallow-anonymous: true\n' +
        'upstreams:\n  - name: main\n    address: 127.0.0.1:1\n',
    );
    const { ready, process: gateway } = await startFleetgate('gateway', ['gateway', '--config', file], 'gateway ready', {
      FLEETGATE_GATEWAY_ID: 'gw-from-env',
      FLEETGATE_JOURNAL_MAX_BYTE: '10MB',
    });
    assert.equal(ready.gatewayId, 'gw-from-env');
    const typo = await gateway.findLine((line) => line.name === 'FLEETGATE_JOURNAL_MAX_BYTE', 1000);
    assert.equal(typo.didYouMean, 'FLEETGATE_JOURNAL_MAX_BYTES');
    assert.equal(typo.msg, 'not a fleetgate setting: this environment variable is ignored');
    assert.equal(ready.data, join(dir.path, 'journal'));
    assert.deepEqual(ready.upstreams, ['main=127.0.0.1:1']);
  });
});
