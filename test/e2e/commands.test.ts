/** Cloud-to-device commands with real processes: cloud-stub admin API -> uplink -> gateway -> device -> back. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import { connect, ConnectivityState, type DeviceClient } from '@fleetgate/device-sdk';
import { FLEETGATE_BIN, killAll } from '../support/fleetgate-process.ts';
import { Stack } from '../support/stack.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { waitUntil } from '../support/test-device.ts';

interface CommandView {
  commandId: string;
  status: string;
  result: unknown;
  message: string | null;
  gatewayId: string | null;
}

const FINAL = ['succeeded', 'failed', 'expired', 'rejected'];

describe('commands (end to end)', function () {
  this.timeout(60_000);
  const dir = useTempDir();
  let stack: Stack;
  let sdkDevices: DeviceClient[] = [];
  let mqttDevices: MqttClient[] = [];

  beforeEach(async () => {
    stack = await Stack.start(dir.path);
  });
  afterEach(async () => {
    await Promise.all(sdkDevices.map((d) => d.close({ drainTimeoutMs: 0 }).catch(() => {})));
    await Promise.all(mqttDevices.map((d) => d.endAsync(true)));
    sdkDevices = [];
    mqttDevices = [];
    await killAll();
  });

  const admin = () => `http://127.0.0.1:${stack.cloudAdminPort}`;
  const send = async (body: Record<string, unknown>): Promise<CommandView> => {
    const res = await fetch(`${admin()}/v1/commands`, { method: 'POST', body: JSON.stringify(body) });
    assert.equal(res.status, 201, await res.clone().text());
    return (await res.json()) as CommandView;
  };
  const finalOf = async (commandId: string): Promise<CommandView> => {
    let view: CommandView | undefined;
    await waitUntil(
      `command ${commandId} to finish`,
      async () => {
        view = (await (await fetch(`${admin()}/v1/commands/${commandId}`)).json()) as CommandView;
        return FINAL.includes(view.status);
      },
      30_000,
    );
    return view!;
  };
  const sdkDevice = async (id: string) => {
    const client = connect({ url: `127.0.0.1:${stack.deviceGrpcPort}`, deviceId: id, reconnect: { maxMs: 200 } });
    client.on('error', () => {});
    sdkDevices.push(client);
    await client.connectivity.waitFor(ConnectivityState.READY);
    return client;
  };
  /** Waits until the cloud-stub knows where the device is (the gateway reported it online). */
  const reported = async (deviceId: string) => {
    const probe = await send({ deviceId, name: 'probe', ttlMs: 10_000 });
    await waitUntil(`${deviceId} reported to the cloud`, async () => {
      const view = (await (await fetch(`${admin()}/v1/commands/${probe.commandId}`)).json()) as CommandView;
      return view.status !== 'pending';
    });
  };

  it("commands - to an online SDK device: its handler's value comes back as the result", async () => {
    const device = await sdkDevice('sdk-1');
    device.onCommand('set-interval', (cmd) => ({ applied: cmd.json<{ seconds: number }>().seconds }));
    await reported('sdk-1');
    const { commandId } = await send({ deviceId: 'sdk-1', name: 'set-interval', payload: { seconds: 30 }, ttlMs: 10_000 });
    const view = await finalOf(commandId);
    assert.deepEqual([view.status, view.result, view.gatewayId], ['succeeded', { applied: 30 }, 'gw-test']);
  });

  it('commands - a handler that throws fails the command with its message; a command without a handler is rejected', async () => {
    const device = await sdkDevice('sdk-1');
    device.onCommand('reboot', () => {
      throw new Error('battery too low to reboot');
    });
    await reported('sdk-1');
    const failed = await finalOf((await send({ deviceId: 'sdk-1', name: 'reboot', ttlMs: 10_000 })).commandId);
    assert.deepEqual([failed.status, failed.message], ['failed', 'battery too low to reboot']);
    const rejected = await finalOf((await send({ deviceId: 'sdk-1', name: 'self-destruct', ttlMs: 10_000 })).commandId);
    assert.deepEqual([rejected.status, rejected.message], ['rejected', 'no handler for command "self-destruct"']);
  });

  it('commands - to an online MQTT device: on devices/{id}/commands/{name}/{commandId}, answered on devices/{id}/command-results/{commandId}', async () => {
    const device = await mqtt.connectAsync({ host: '127.0.0.1', port: stack.mqttPort, clientId: 'mqtt-1', reconnectPeriod: 0 });
    mqttDevices.push(device);
    device.on('message', (topic, payload) => {
      const [, id, kind, name, commandId] = topic.split('/');
      if (kind !== 'commands') return;
      const answer =
        name === 'read-config'
          ? { status: 'succeeded', payload: { asked: JSON.parse(payload.toString()) } }
          : { status: 'rejected', message: 'unknown' };
      void device.publishAsync(`devices/${id}/command-results/${commandId}`, JSON.stringify(answer), { qos: 1 });
    });
    await reported('mqtt-1');
    const view = await finalOf(
      (await send({ deviceId: 'mqtt-1', name: 'read-config', payload: 'all', ttlMs: 10_000 })).commandId,
    );
    assert.deepEqual([view.status, view.result], ['succeeded', { asked: 'all' }]);
  });

  it('commands - to an MQTT 5 device: the TTL as message expiry, answered on the response topic with the correlation data', async () => {
    const device = await mqtt.connectAsync({
      host: '127.0.0.1',
      port: stack.mqttPort,
      clientId: 'mqtt5-1',
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    mqttDevices.push(device);
    const seen: Array<{ expiry?: number; correlation?: string }> = [];
    device.on('message', (topic, _payload, packet) => {
      if (topic.split('/')[2] !== 'commands') return;
      const properties = packet.properties ?? {};
      seen.push({ expiry: properties.messageExpiryInterval, correlation: properties.correlationData?.toString() });
      // A request/response client answers where it was told to.
      void device.publishAsync(properties.responseTopic!, JSON.stringify({ status: 'succeeded', payload: 'done' }), {
        qos: 1,
        properties: { correlationData: properties.correlationData! },
      });
    });
    await reported('mqtt5-1');
    const command = await send({ deviceId: 'mqtt5-1', name: 'reboot', ttlMs: 60_000 });
    const view = await finalOf(command.commandId);
    assert.deepEqual([view.status, view.result], ['succeeded', 'done']);
    const delivered = seen.find((s) => s.correlation === command.commandId);
    assert.ok(delivered && delivered.expiry! > 50 && delivered.expiry! <= 60, JSON.stringify(seen));
  });

  it('commands - to a device not yet connected: delivered when it connects before the command expires', async () => {
    const { commandId } = await send({ deviceId: 'late-1', name: 'hello', payload: 1, ttlMs: 30_000 });
    assert.equal(((await (await fetch(`${admin()}/v1/commands/${commandId}`)).json()) as CommandView).status, 'pending');
    const device = connect({ url: `127.0.0.1:${stack.deviceGrpcPort}`, deviceId: 'late-1', reconnect: { maxMs: 200 } });
    sdkDevices.push(device);
    device.onCommand('hello', (cmd) => `hi ${cmd.json<number>()}`);
    const view = await finalOf(commandId);
    assert.deepEqual([view.status, view.result], ['succeeded', 'hi 1']);
  });

  it('commands - to a device that does not connect in time: expired, with why', async () => {
    const { commandId } = await send({ deviceId: 'never-1', name: 'hello', ttlMs: 1000 });
    const view = await finalOf(commandId);
    assert.equal(view.status, 'expired');
    assert.match(view.message ?? '', /no gateway took it before it expired/);
  });

  it('commands - a command waiting at a gateway for its device survives the gateway being SIGKILLed, and expires there if need be', async () => {
    const device = await sdkDevice('sdk-2');
    await reported('sdk-2');
    await device.close({ drainTimeoutMs: 0 });
    const { commandId } = await send({ deviceId: 'sdk-2', name: 'calibrate', ttlMs: 30_000 });
    await waitUntil(
      'queued at the gateway',
      async () => ((await (await fetch(`${admin()}/v1/commands/${commandId}`)).json()) as CommandView).status === 'queued',
    );
    await stack.gateway.kill();
    await stack.startGateway();
    const again = connect({ url: `127.0.0.1:${stack.deviceGrpcPort}`, deviceId: 'sdk-2', reconnect: { maxMs: 200 } });
    sdkDevices.push(again);
    again.onCommand('calibrate', () => 'calibrated');
    assert.deepEqual([(await finalOf(commandId)).status, (await finalOf(commandId)).result], ['succeeded', 'calibrated']);

    const expiring = await send({ deviceId: 'sdk-2', name: 'calibrate', ttlMs: 1500 });
    await again.close({ drainTimeoutMs: 0 });
    const view = await finalOf(expiring.commandId);
    assert.equal(view.status, 'expired');
  });

  it('commands - fleetgate cloud command --wait prints the final status (exit 0 only when it succeeded)', async () => {
    const device = await sdkDevice('sdk-3');
    device.onCommand('ping', () => 'pong');
    await reported('sdk-3');
    const run = (name: string) =>
      promisify(execFile)(process.execPath, [
        FLEETGATE_BIN,
        'cloud',
        'command',
        '--device',
        'sdk-3',
        '--name',
        name,
        '--ttl',
        '10s',
        '--wait',
        '--admin',
        `127.0.0.1:${stack.cloudAdminPort}`,
      ]).then(
        ({ stdout }) => ({ code: 0, stdout }),
        (err: { code: number; stdout: string }) => ({ code: err.code, stdout: err.stdout }),
      );
    const ok = await run('ping');
    assert.equal(ok.code, 0);
    assert.deepEqual(((v: CommandView) => [v.status, v.result])(JSON.parse(ok.stdout)), ['succeeded', 'pong']);
    const refused = await run('unknown-command');
    assert.equal(refused.code, 2);
    assert.equal((JSON.parse(refused.stdout) as CommandView).status, 'rejected');
  });

  it('commands - the admin API refuses a bad request precisely', async () => {
    for (const [body, message] of [
      [{ name: 'x' }, /expected \{"deviceId"/],
      [{ deviceId: 'bad/id', name: 'x' }, /deviceId "bad\/id" is not/],
      [{ deviceId: 'd', name: 'x', ttlMs: -1 }, /ttlMs must be an integer/],
    ] as const) {
      const res = await fetch(`${admin()}/v1/commands`, { method: 'POST', body: JSON.stringify(body) });
      assert.equal(res.status, 400);
      assert.match(((await res.json()) as { error: string }).error, message);
    }
    assert.equal((await fetch(`${admin()}/v1/commands/nope`)).status, 404);
  });
});
