/**
 * The backend scaled out: cloud-stub replicas on a real 3-node NATS JetStream cluster (nats-server processes),
 * a real gateway with both replicas as upstreams, real MQTT and SDK devices. Replicas and NATS nodes are
 * SIGKILLed mid-run; what was PUBACKed must be in the stream exactly once, in order per device.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { connect, ConnectivityState, type DeviceClient } from '@fleetgate/device-sdk';
import type { ExportedRecord } from '@fleetgate/cloud-stub';
import { fetchRecords } from '@fleetgate/simulators';
import { verifyDelivery } from '../support/delivery.ts';
import { killAll, portOf, startFleetgate, type Started } from '../support/fleetgate-process.ts';
import { NatsCluster } from '../support/nats-cluster.ts';
import { NATS_SERVER, requireProgram } from '../support/system-packages.ts';
import { TestDevice, waitUntil } from '../support/test-device.ts';
import { RawUplink, telemetry } from '../support/uplink-client.ts';
import { useTempDir } from '../support/temp-dir.ts';

interface Replica {
  started: Started;
  port: number;
  admin: string;
}

describe('replicas on NATS JetStream (end to end)', function () {
  this.timeout(240_000);
  before(function () {
    requireProgram(this, NATS_SERVER);
  });
  const dir = useTempDir('fleetgate-replicas-');
  let cluster: NatsCluster | undefined;
  const devices: TestDevice[] = [];
  const sdkDevices: DeviceClient[] = [];

  afterEach(async () => {
    await Promise.all(sdkDevices.splice(0).map((d) => d.close({ drainTimeoutMs: 0 }).catch(() => {})));
    await Promise.all(devices.splice(0).map((d) => d.close()));
    await killAll();
    await cluster?.stop();
    cluster = undefined;
  });

  const startReplica = async (name: string): Promise<Replica> => {
    const started = await startFleetgate(
      name,
      [
        'cloud',
        '--allow-anonymous',
        '--listen',
        '127.0.0.1:0',
        '--admin',
        '127.0.0.1:0',
        '--sink',
        'jetstream',
        '--nats',
        cluster!.urls.join(','),
        '--data',
        join(dir.path, name),
      ],
      'cloud-stub ready',
    );
    return { started, port: portOf(started.ready.listen), admin: `http://127.0.0.1:${portOf(started.ready.admin)}` };
  };
  const startGateway = (id: string, upstreams: Replica[]) =>
    startFleetgate(
      `gateway-${id}`,
      [
        'gateway',
        '--gateway-id',
        id,
        '--allow-anonymous',
        '--mqtt',
        '127.0.0.1:0',
        '--admin',
        '127.0.0.1:0',
        '--device-grpc',
        '127.0.0.1:0',
        '--upstream',
        upstreams.map((r) => `127.0.0.1:${r.port}`).join(','),
        '--data',
        join(dir.path, id),
        '--reconnect-max-ms',
        '500',
      ],
      'gateway ready',
    );
  const stats = async (replica: Replica) =>
    (await (await fetch(`${replica.admin}/v1/stats`)).json()) as {
      sessions: number;
      records: number;
      duplicates: number;
      gateways: Record<string, { records: number; lastSeq: number }>;
    };
  const records = async (replica: Replica, prefix: string) => {
    const all: ExportedRecord[] = [];
    for await (const record of fetchRecords(replica.admin, prefix)) all.push(record);
    return all;
  };

  it('replicas - the replica holding the stream and one NATS node SIGKILLed mid-run: every PUBACKed message in the stream exactly once, in order', async () => {
    cluster = await NatsCluster.start({ dir: join(dir.path, 'nats') });
    const replicas = [await startReplica('cloud-a'), await startReplica('cloud-b')];
    const gateway = await startGateway('gw-js', replicas);
    for (let i = 0; i < 20; i++) devices.push(new TestDevice(`dev-${i}`, portOf(gateway.ready.mqtt)));
    await Promise.all(devices.map((d) => d.connected()));
    for (const d of devices) d.run();
    const ackedEach = (n: number) =>
      waitUntil(`every device to have ${n} acked`, () => devices.every((d) => d.acked.size >= n), 60_000);

    await ackedEach(200);
    const holding = await waitUntil('a replica holding the gateway stream', async () => {
      const sessions = await Promise.all(replicas.map(async (r) => (await stats(r)).sessions));
      return sessions.indexOf(1) + 1;
    });
    const [dead, alive] = holding === 1 ? [replicas[0]!, replicas[1]!] : [replicas[1]!, replicas[0]!];
    await dead.started.process.kill();
    await waitUntil('the other replica to take the stream', async () => (await stats(alive)).sessions === 1, 30_000);
    const afterReplica = Math.min(...devices.map((d) => d.acked.size));
    await ackedEach(afterReplica + 200);

    await cluster.kill(0);
    const afterNode = Math.min(...devices.map((d) => d.acked.size));
    await ackedEach(afterNode + 200);
    await Promise.all(devices.map((d) => d.stop()));
    const acked = devices.reduce((n, d) => n + d.acked.size, 0);
    await waitUntil(
      'the stream to hold every acked message',
      async () => (await stats(alive)).gateways?.['gw-js']?.records === acked,
      60_000,
    );

    const report = verifyDelivery(
      await records(alive, 'dev-'),
      devices.map((d) => ({ deviceId: d.id, acked: d.acked })),
    );
    assert.deepEqual(
      { lost: report.lost, duplicates: report.duplicates, outOfOrder: report.outOfOrder, duplicateSeqs: report.duplicateSeqs },
      { lost: [], duplicates: [], outOfOrder: [], duplicateSeqs: [] },
    );
    assert.equal(report.records, acked);
  });

  it("replicas - JetStream's duplicate window drops a batch resent by hand, through either replica", async () => {
    cluster = await NatsCluster.start({ dir: join(dir.path, 'nats') });
    const replicas = [await startReplica('cloud-a'), await startReplica('cloud-b')];
    const batch = Array.from({ length: 100 }, (_, i) => telemetry(i + 1, `dup-${i % 4}`));
    for (const replica of [replicas[0]!, replicas[1]!, replicas[0]!]) {
      const uplink = RawUplink.connect(replica.port);
      uplink.hello('gw-dup');
      await uplink.frame(1);
      uplink.batch(batch);
      const ack = await uplink.ack(1);
      assert.deepEqual([ack.fromSeq, ack.throughSeq], [1, 100]);
      uplink.close();
    }
    const [a, b] = await Promise.all(replicas.map(stats));
    assert.equal(a!.gateways['gw-dup']?.records, 100);
    assert.equal(b!.gateways['gw-dup']?.records, 100);
    assert.equal(a!.gateways['gw-dup']?.lastSeq, 100);
    assert.equal((await records(replicas[1]!, 'dup-')).length, 100);
    // The two resends (one through each replica) were dropped: 200 duplicates, counted for the cluster.
    assert.deepEqual([a!.duplicates, b!.duplicates], [200, 200]);
  });

  it('replicas - a command sent through one replica reaches a device whose gateway is connected to the other', async () => {
    cluster = await NatsCluster.start({ dir: join(dir.path, 'nats') });
    const [a, b] = [await startReplica('cloud-a'), await startReplica('cloud-b')];
    const gateway = await startGateway('gw-cmd', [b]);
    const device = connect({
      url: `127.0.0.1:${portOf(gateway.ready.deviceGrpc)}`,
      deviceId: 'sdk-cmd',
      reconnect: { maxMs: 200 },
    });
    device.on('error', () => {});
    sdkDevices.push(device);
    device.onCommand('set-interval', (cmd) => ({ applied: cmd.json<{ seconds: number }>().seconds, via: 'sdk-cmd' }));
    await device.connectivity.waitFor(ConnectivityState.READY);
    await waitUntil('gw-cmd to hold its stream at b', async () => (await stats(b)).sessions === 1);
    assert.equal((await stats(a)).sessions, 0);

    const created = await fetch(`${a.admin}/v1/commands`, {
      method: 'POST',
      body: JSON.stringify({ deviceId: 'sdk-cmd', name: 'set-interval', payload: { seconds: 30 }, ttlMs: 30_000 }),
    });
    assert.equal(created.status, 201, await created.clone().text());
    const { commandId } = (await created.json()) as { commandId: string };
    const view = await waitUntil(
      'the command to succeed',
      async () => {
        const v = (await (await fetch(`${a.admin}/v1/commands/${commandId}`)).json()) as {
          status: string;
          result: unknown;
          gatewayId: string;
        };
        return v.status === 'succeeded' && v;
      },
      30_000,
    );
    assert.deepEqual([view.result, view.gatewayId], [{ applied: 30, via: 'sdk-cmd' }, 'gw-cmd']);
    // b sees the same command, in the same state: the store is shared.
    const fromB = (await (await fetch(`${b.admin}/v1/commands/${commandId}`)).json()) as { status: string };
    assert.equal(fromB.status, 'succeeded');
  });
});
