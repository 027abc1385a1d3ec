/**
 * The durable pipeline end to end, with real processes: mqtt.js devices -> `fleetgate gateway` (aedes, SQLite
 * journal) -> gRPC -> `fleetgate cloud` (SQLite sink). Each test ends by reading what the cloud committed and
 * checking it against what the devices were told was safe.
 */
import assert from 'node:assert/strict';
import { killAll } from '../support/fleetgate-process.ts';
import { readCloud, verifyDelivery, type DeviceExpectation } from '../support/delivery.ts';
import { Stack } from '../support/stack.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { TestDevice, waitUntil } from '../support/test-device.ts';

describe('pipeline (end to end)', function () {
  this.timeout(120_000);
  const dir = useTempDir();
  let devices: TestDevice[] = [];

  afterEach(async () => {
    await Promise.all(devices.map((d) => d.close()));
    devices = [];
    await killAll();
  });

  const connectDevices = async (stack: Stack, count: number, window = 20) => {
    devices = Array.from(
      { length: count },
      (_, i) => new TestDevice(`dev-${String(i).padStart(2, '0')}`, stack.mqttPort, window),
    );
    await Promise.all(devices.map((d) => d.connected()));
    return devices;
  };

  const expectations = (mayRepeat?: Map<string, Set<number>>): DeviceExpectation[] =>
    devices.map((d) => ({ deviceId: d.id, acked: d.acked, mayRepeat: mayRepeat?.get(d.id) ?? new Set() }));

  /** Waits until the cloud holds every record the gateway journaled and the journal is empty. */
  const drained = async (stack: Stack) =>
    waitUntil('the journal to drain to the cloud', async () => {
      const [gw, cloud] = await Promise.all([stack.gatewayStats(), stack.cloudStats()]);
      return gw.journal.rows === 0 && gw.upstreams[0]!.ackedThrough === gw.journal.lastSeq && cloud.records >= gw.journal.lastSeq;
    });

  it('pipeline - 20 mqtt.js devices x 1,000 QoS 1 messages arrive exactly once, in per-device order', async () => {
    const stack = await Stack.start(dir.path);
    await connectDevices(stack, 20);
    await Promise.all(devices.map((d) => d.publishUpTo(1000)));
    await drained(stack);

    const report = verifyDelivery(readCloud(stack.cloudData), expectations());
    assert.deepEqual(report, { records: 20_000, lost: [], duplicates: [], outOfOrder: [], duplicateSeqs: [] });
    const [gw, cloud] = await Promise.all([stack.gatewayStats(), stack.cloudStats()]);
    assert.equal(gw.ingress.qos1, 20_000);
    assert.equal(cloud.duplicates, 0);
    assert.equal(cloud.gateways['gw-test']?.lastSeq, 20_000);
    assert.equal(Object.keys(cloud.devices).length, 20);
  });

  it('pipeline - a gateway SIGKILLed after PUBACKs and restarted on its data loses nothing it acknowledged', async () => {
    const stack = await Stack.start(dir.path);
    await connectDevices(stack, 20);
    for (const d of devices) d.run();
    await waitUntil('3,000 PUBACKs', () => devices.reduce((n, d) => n + d.acked.size, 0) >= 3000);

    // What the devices had sent and not heard back about when the gateway died: these alone may arrive twice
    // (committed, PUBACK lost with the process, resent by mqtt.js after reconnecting: MQTT QoS 1 semantics).
    const inFlightAtKill = new Map(devices.map((d) => [d.id, new Set(d.inFlight)]));
    const ackedAtKill = devices.reduce((n, d) => n + d.acked.size, 0);
    await stack.gateway.kill();
    for (const [id, set] of inFlightAtKill) for (const n of devices.find((d) => d.id === id)!.inFlight) set.add(n);

    await stack.startGateway();
    await waitUntil(
      '2,000 more PUBACKs after the restart',
      () => devices.reduce((n, d) => n + d.acked.size, 0) >= ackedAtKill + 2000,
    );
    await Promise.all(devices.map((d) => d.stop()));
    await drained(stack);

    const report = verifyDelivery(readCloud(stack.cloudData), expectations(inFlightAtKill));
    assert.deepEqual({ ...report, records: 0 }, { records: 0, lost: [], duplicates: [], outOfOrder: [], duplicateSeqs: [] });
    assert.ok(report.records >= ackedAtKill + 2000);
  });

  it('pipeline - the cloud-stub killed mid-stream and restarted: the gateway buffers, reconnects, nothing is lost', async () => {
    const stack = await Stack.start(dir.path);
    await connectDevices(stack, 20);
    for (const d of devices) d.run();
    await waitUntil('the cloud to commit 2,000 records', async () => (await stack.cloudStats()).records >= 2000);

    await stack.cloud.kill();
    const ackedAtKill = devices.reduce((n, d) => n + d.acked.size, 0);
    // Devices keep getting PUBACKs while the backend is away: the journal holds their data.
    await waitUntil(
      '2,000 PUBACKs with the cloud down',
      () => devices.reduce((n, d) => n + d.acked.size, 0) >= ackedAtKill + 2000,
    );
    const whileDown = await stack.gatewayStats();
    assert.notEqual(whileDown.upstreams[0]!.state, 'ready');
    assert.ok(whileDown.journal.rows >= 2000, `journal rows ${whileDown.journal.rows}`);

    await stack.startCloud();
    await Promise.all(devices.map((d) => d.stop()));
    await drained(stack);

    const report = verifyDelivery(readCloud(stack.cloudData), expectations());
    assert.deepEqual({ ...report, records: 0 }, { records: 0, lost: [], duplicates: [], outOfOrder: [], duplicateSeqs: [] });
    const gw = await stack.gatewayStats();
    assert.ok(gw.upstreams[0]!.sessions >= 2, 'the gateway reconnected');
    assert.equal(report.records, gw.journal.lastSeq, 'every journaled record is at the cloud, once');
  });

  it('pipeline - a cloud that stops acking stops the sender at its window; the journal grows; acks resume it', async () => {
    const stack = await Stack.start(dir.path, ['--uplink-window', '2', '--batch-max-records', '50']);
    await connectDevices(stack, 1);
    await stack.holdAcks(true);
    await devices[0]!.publishUpTo(1000);

    // All 1,000 are in the journal (PUBACKed); at most window x batch = 100 went out, and nothing more will
    // while no ack comes back.
    await waitUntil('two batches in flight', async () => (await stack.gatewayStats()).upstreams[0]!.batchesInFlight === 2);
    const held = await stack.gatewayStats();
    assert.equal(held.journal.rows, 1000);
    assert.equal(held.upstreams[0]!.ackedThrough, 0);
    assert.ok(held.upstreams[0]!.sentThrough <= 100, `sent through ${held.upstreams[0]!.sentThrough}`);
    assert.ok((await stack.cloudStats()).records <= 100);

    await stack.holdAcks(false);
    await drained(stack);
    const report = verifyDelivery(readCloud(stack.cloudData), expectations());
    assert.deepEqual(report, { records: 1000, lost: [], duplicates: [], outOfOrder: [], duplicateSeqs: [] });
  });
});
