/**
 * MQTT 5 with a third-party client: Eclipse Paho (Debian's python3-paho-mqtt, test/support/python/paho_device.py)
 * against a gateway process (the built CLI) and a cloud-stub: the CONNACK, a refused PUBLISH that leaves the
 * connection up, SUBACK per filter, and its telemetry at the backend.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { killAll } from '../support/fleetgate-process.ts';
import { readCloud } from '../support/delivery.ts';
import { Stack } from '../support/stack.ts';
import { PYTHON_PAHO, requireProgram } from '../support/system-packages.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { waitUntil } from '../support/test-device.ts';

const SCRIPT = fileURLToPath(new URL('../support/python/paho_device.py', import.meta.url));

describe('mqtt 5 (paho)', function () {
  this.timeout(60_000);
  const dir = useTempDir();
  afterEach(() => killAll());

  it('mqtt 5 - a Paho MQTT 5 device: CONNACK codes, a refused PUBLISH keeps the connection, SUBACK per filter', async function () {
    const python = requireProgram(this, PYTHON_PAHO);
    const stack = await Stack.start(dir.path, ['--max-unacked-per-connection', '200']);
    const child = spawn(python, [SCRIPT, '127.0.0.1', String(stack.mqttPort)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.equal(code, 0, err);
    const steps = Object.fromEntries(
      out
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { step: string })
        .map((s) => [s.step, s]),
    ) as Record<string, Record<string, unknown>>;
    assert.equal(steps['bad-id']?.code, 0x85);
    assert.equal(steps.connack?.code, 0);
    const announced = steps.connack?.properties as Record<string, unknown>;
    assert.equal(announced.ReceiveMaximum, 200);
    assert.equal(typeof announced.MaximumPacketSize, 'number');
    assert.deepEqual(steps.published, { step: 'published', done: true });
    assert.deepEqual(steps['refused-publish'], { step: 'refused-publish', done: true, connected: true });
    assert.deepEqual(steps.suback?.codes, [1, 0x87]);
    assert.deepEqual(steps.after, { step: 'after', done: true, connected: true });
    const refusals = (await stack.gatewayStats()).ingress.refusals;
    assert.equal(refusals['publish-denied'], 1);
    assert.equal(refusals['subscribe-denied'], 1);
    await waitUntil('both messages at the backend', async () => (await stack.cloudStats()).records === 2);
    assert.deepEqual(
      readCloud(stack.cloudData).map((r) => Buffer.from(r.payload, 'base64').toString()),
      ['{"t":21}', '{"t":22}'],
    );
  });
});
