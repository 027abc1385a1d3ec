/**
 * `fleetgate sim` end to end: the real CLI as a child process, real gateways and cloud-stubs, real devices.
 * The verifier must find nothing wrong where nothing is wrong, and exactly what is wrong behind a stand-in
 * that drops, duplicates and reorders on purpose.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SimResult } from '@fleetgate/simulators';
import { launchBrowser } from '../support/browser.ts';
import { CHROMIUM, requireProgram } from '../support/system-packages.ts';
import { readCloud } from '../support/delivery.ts';
import { FLEETGATE_BIN, killAll, portOf, startFleetgate } from '../support/fleetgate-process.ts';
import { LossyGateway } from '../support/lossy-gateway.ts';
import { Stack } from '../support/stack.ts';
import { useTempDir } from '../support/temp-dir.ts';

const SCENARIOS = fileURLToPath(new URL('../../simulators/scenarios/', import.meta.url));

/** Runs `fleetgate sim ...args --json -`; resolves with its exit code, parsed result and what it printed on stderr. */
async function sim(
  args: string[],
  timeoutMs: number,
): Promise<{ code: number | null; result: SimResult | undefined; stderr: string }> {
  const child = spawn(process.execPath, [FLEETGATE_BIN, 'sim', '--json', '-', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  let result: SimResult | undefined;
  try {
    result = JSON.parse(stdout) as SimResult;
  } catch {
    result = undefined;
  }
  return { code, result, stderr };
}

describe('fleetgate sim', function () {
  this.timeout(180_000);
  const dir = useTempDir('fleetgate-sim-');
  afterEach(killAll);

  it('sim - --mqtt-version mixed: MQTT 5 devices beside 3.1.1 ones, verified end to end', async () => {
    const stack = await Stack.start(dir.path);
    const { code, result, stderr } = await sim(
      ['--devices', '4', '--protocol', 'mqtt', '--mqtt-version', 'mixed', '--messages', '30', '--rate', '100']
        .concat(['--id-prefix', 'v5mix-', '--gateway', `mqtt://127.0.0.1:${stack.mqttPort}`])
        .concat(['--gateway-admin', `http://127.0.0.1:${stack.gatewayAdminPort}`])
        .concat(['--cloud-admin', `http://127.0.0.1:${stack.cloudAdminPort}`]),
      120_000,
    );
    assert.equal(code, 0, stderr);
    const v = result!.verification;
    assert.deepEqual([v.ok, v.sent, v.arrived, v.lost, v.duplicates], [true, 120, 120, 0, 0]);
    const tcp = (await stack.gatewayStats()).ingress.protocols.tcp;
    assert.equal(tcp['5'].connections >= 2 && tcp['3.1.1'].connections >= 2, true, JSON.stringify(tcp));
  });

  it('verifies a mixed MQTT and SDK fleet through a real gateway and cloud-stub: nothing lost, nothing twice, in order', async () => {
    const stack = await Stack.start(dir.path);
    const { code, result, stderr } = await sim(
      [
        '--devices',
        '6',
        '--protocol',
        'mix',
        '--messages',
        '50',
        '--rate',
        '100',
        '--id-prefix',
        'mixed-',
        '--gateway',
        `mqtt://127.0.0.1:${stack.mqttPort}`,
        '--device-grpc',
        `127.0.0.1:${stack.deviceGrpcPort}`,
        '--gateway-admin',
        `http://127.0.0.1:${stack.gatewayAdminPort}`,
        '--cloud-admin',
        `http://127.0.0.1:${stack.cloudAdminPort}`,
      ],
      120_000,
    );
    assert.equal(code, 0, stderr);
    const v = result!.verification;
    assert.deepEqual(
      {
        ok: v.ok,
        devices: v.devices,
        sent: v.sent,
        acked: v.acked,
        arrived: v.arrived,
        lost: v.lost,
        duplicates: v.duplicates,
        outOfOrder: v.outOfOrder,
      },
      { ok: true, devices: 6, sent: 300, acked: 300, arrived: 300, lost: 0, duplicates: 0, outOfOrder: 0 },
    );
    assert.deepEqual(new Set(v.perDevice.map((d) => d.protocol)), new Set(['mqtt', 'sdk']));
    // The cloud-stub's own file agrees: 300 records of these devices.
    assert.equal(readCloud(stack.cloudData).filter((r) => r.deviceId.startsWith('mixed-')).length, 300);
    assert.equal(result!.latency.count, 300);
    assert.ok(
      result!.latency.p50 > 0 && result!.latency.p50 <= result!.latency.p99 && result!.latency.p99 <= result!.latency.max,
    );
    // The last sample the cloud-stub answered (a sample whose stats request timed out on a loaded machine is null).
    const answered = result!.timeline.filter((s) => s.committed !== null);
    assert.equal(answered.at(-1)?.committed, 300, JSON.stringify(result!.timeline.slice(-3)));
    assert.match(stderr, /PASS/);
  });

  it('finds exactly the messages a dropping, duplicating, reordering stand-in got wrong, and exits 1', async () => {
    const cloud = await startFleetgate(
      'cloud-stub',
      ['cloud', '--allow-anonymous', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--data', join(dir.path, 'cloud')],
      'cloud-stub ready',
    );
    const lost = ['bad-0#3', 'bad-0#17', 'bad-1#1', 'bad-2#40', 'bad-3#9', 'bad-3#10'];
    const gateway = await LossyGateway.start(portOf(cloud.ready.listen), {
      drop: new Set(lost),
      duplicate: new Set(['bad-1#5', 'bad-2#20']),
      holdUntilAfter: new Map([['bad-3#30', 'bad-3#33']]),
    });
    try {
      const { code, result, stderr } = await sim(
        [
          '--devices',
          '4',
          '--messages',
          '40',
          '--rate',
          '100',
          '--window',
          '1',
          '--id-prefix',
          'bad-',
          '--settle',
          '20s',
          '--gateway',
          `mqtt://127.0.0.1:${gateway.port}`,
          '--gateway-admin',
          'off',
          '--cloud-admin',
          `http://127.0.0.1:${portOf(cloud.ready.admin)}`,
        ],
        120_000,
      );
      assert.equal(code, 1, stderr);
      const v = result!.verification;
      assert.equal(v.ok, false);
      assert.equal(v.acked, 160);
      assert.deepEqual([...v.examples.lost].sort(), [...lost].sort());
      assert.equal(v.lost, 6);
      assert.deepEqual([...v.examples.duplicates].sort(), ['bad-1#5', 'bad-2#20']);
      assert.equal(v.duplicates, 2);
      assert.deepEqual(v.examples.outOfOrder, ['bad-3#30']);
      assert.equal(v.outOfOrder, 1);
      assert.equal(v.arrived, 154);
      assert.deepEqual(
        v.perDevice.map((d) => [d.deviceId, d.lost, d.duplicates, d.outOfOrder]),
        [
          ['bad-0', 2, 0, 0],
          ['bad-1', 1, 1, 0],
          ['bad-2', 1, 1, 0],
          ['bad-3', 2, 0, 1],
        ],
      );
      assert.match(stderr, /FAIL/);
    } finally {
      await gateway.close();
    }
  });

  it('runs the gateway-crash scenario (two SIGKILLs under load) to the end, verifies clean, and its report renders', async function () {
    requireProgram(this, CHROMIUM);
    const report = join(dir.path, 'report.html');
    const { code, result, stderr } = await sim(
      ['--scenario', join(SCENARIOS, 'gateway-crash.yaml'), '--data', join(dir.path, 'stack'), '--report', report],
      150_000,
    );
    assert.equal(code, 0, stderr);
    const v = result!.verification;
    assert.equal(v.ok, true, JSON.stringify(v.examples));
    assert.equal(v.lost + v.duplicates + v.outOfOrder, 0);
    assert.equal(v.devices, 30);
    assert.ok(v.acked > 5000, `acked ${v.acked}`);
    assert.equal(v.arrived, v.acked);
    assert.deepEqual(
      result!.faults.map((f) => f.kind),
      ['kill-gateway', 'kill-gateway'],
    );
    // The kills were real: the gateway's pid changed each time, and devices went offline after each.
    const pids = result!.faults.map((f) => /pid (\d+)/.exec(f.detail)![1]);
    assert.notEqual(pids[0], pids[1]);
    for (const fault of result!.faults) {
      const after = result!.timeline.filter((s) => s.t > fault.t && s.t < fault.t + 4);
      assert.ok(
        after.some((s) => s.connected < 30),
        `devices stayed connected after the kill at ${fault.t} s`,
      );
    }
    assert.deepEqual(
      result!.phases.map((p) => p.name),
      ['ramp-up', 'steady', 'burst'],
    );

    const browser = await launchBrowser(this);
    try {
      const page = await browser.open(`file://${report}`);
      await page.waitFor('body[data-charts]');
      assert.equal(await page.evaluate<string>('document.body.dataset.charts'), '4');
      assert.match(await page.evaluate<string>('document.body.innerText'), /PASS[\s\S]*kill-gateway/);
      assert.deepEqual(page.problems(), []);
      assert.deepEqual(page.requests, [`file://${report}`]);
    } finally {
      await browser.close();
    }
  });
});
