/**
 * The device SDK end to end with real processes: SDK devices -> `fleetgate gateway` (device link, journal) ->
 * `fleetgate cloud`. With the SDK, delivery is exactly-once even across a gateway crash: the device resends
 * what was not acked, and the journal recognises (device, epoch, seq).
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { connect, type DeviceClient } from '@fleetgate/device-sdk';
import { killAll, startScript } from '../support/fleetgate-process.ts';
import { readCloud, verifyDelivery } from '../support/delivery.ts';
import { Stack } from '../support/stack.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { waitUntil } from '../support/test-device.ts';

const DEVICE_SCRIPT = fileURLToPath(new URL('../support/sdk-device-process.ts', import.meta.url));

/** An SDK device in this process that sends "<id>:<n>" for n = 1..count, at most `window` unresolved. */
class SdkSender {
  readonly resolved = new Set<number>();
  readonly client: DeviceClient;
  private next = 1;
  private inFlight = 0;
  done: Promise<void>;
  private finish!: () => void;

  constructor(
    readonly id: string,
    url: string,
    private readonly count: number,
    private readonly window = 100,
  ) {
    this.client = connect({ url, deviceId: id, reconnect: { maxMs: 200 }, outbox: { maxMessages: 20_000 } });
    this.client.on('error', () => {});
    this.done = new Promise((resolve) => (this.finish = resolve));
    this.pump();
  }

  private pump(): void {
    while (this.inFlight < this.window && this.next <= this.count) {
      const n = this.next++;
      this.inFlight++;
      void this.client.send(`${this.id}:${n}`).then(() => {
        this.resolved.add(n);
        this.inFlight--;
        if (this.resolved.size === this.count) this.finish();
        else this.pump();
      });
    }
  }
}

describe('device sdk (end to end)', function () {
  this.timeout(180_000);
  const dir = useTempDir();
  let senders: SdkSender[] = [];

  afterEach(async () => {
    await Promise.all(senders.map((s) => s.client.close({ drainTimeoutMs: 0 }).catch(() => {})));
    senders = [];
    await killAll();
  });

  const resolved = () => senders.reduce((n, s) => n + s.resolved.size, 0);
  const drained = (stack: Stack) =>
    waitUntil(
      'the journal drained to the cloud',
      async () => {
        const [gw, cloud] = await Promise.all([stack.gatewayStats(), stack.cloudStats()]);
        return gw.journal.rows === 0 && cloud.records >= gw.journal.lastSeq;
      },
      60_000,
    );
  const verify = (stack: Stack) =>
    verifyDelivery(
      readCloud(stack.cloudData),
      senders.map((s) => ({ deviceId: s.id, acked: s.resolved })),
    );

  it('sdk - 10 devices x 1,000 sends, the gateway SIGKILLed and restarted twice: every send arrives exactly once, in order', async () => {
    const stack = await Stack.start(dir.path);
    senders = Array.from({ length: 10 }, (_, i) => new SdkSender(`sdk-${i}`, `127.0.0.1:${stack.deviceGrpcPort}`, 1000));
    for (const threshold of [2500, 6000]) {
      await waitUntil(`${threshold} sends resolved`, () => resolved() >= threshold, 60_000);
      await stack.gateway.kill();
      await stack.startGateway();
    }
    await Promise.all(senders.map((s) => s.done));
    await drained(stack);
    assert.deepEqual(verify(stack), { records: 10_000, lost: [], duplicates: [], outOfOrder: [], duplicateSeqs: [] });
  });

  it('sdk - the same with the cloud-stub restarted twice', async () => {
    const stack = await Stack.start(dir.path);
    senders = Array.from({ length: 10 }, (_, i) => new SdkSender(`sdk-${i}`, `127.0.0.1:${stack.deviceGrpcPort}`, 1000));
    for (const threshold of [2500, 6000]) {
      await waitUntil(`${threshold} sends resolved`, () => resolved() >= threshold, 60_000);
      await stack.cloud.kill();
      await stack.startCloud();
    }
    await Promise.all(senders.map((s) => s.done));
    await drained(stack);
    assert.deepEqual(verify(stack), { records: 10_000, lost: [], duplicates: [], outOfOrder: [], duplicateSeqs: [] });
    assert.ok((await stack.gatewayStats()).upstreams[0]!.sessions >= 3, 'the gateway reconnected to the restarted cloud-stub');
  });

  it('sdk - a device process killed with messages in its durable outbox loses none of them once restarted', async () => {
    // A rate limit at the gateway keeps part of the outbox unsent when the device dies.
    const stack = await Stack.start(dir.path, ['--rate-limit', '1000', '--rate-burst', '100']);
    const settings = {
      url: `127.0.0.1:${stack.deviceGrpcPort}`,
      deviceId: 'durable-1',
      outboxPath: join(dir.path, 'device', 'outbox.db'),
      count: 3000,
    };
    const first = startScript('device', DEVICE_SCRIPT, [JSON.stringify(settings)]);
    await first.waitForLine((line) => line.event === 'queued');
    await first.waitForLine((line) => line.event === 'acked' && Number(line.n) >= 300);
    await first.kill();
    const ackedBeforeKill = (await stack.gatewayStats()).journal.lastSeq;
    assert.ok(ackedBeforeKill < 3000, `only ${ackedBeforeKill} of 3000 had reached the gateway when the device died`);

    const second = startScript('device', DEVICE_SCRIPT, [JSON.stringify({ ...settings, count: 0 })]);
    await second.waitForLine((line) => line.event === 'drained', 30_000);
    await drained(stack);
    const report = verifyDelivery(readCloud(stack.cloudData), [
      { deviceId: 'durable-1', acked: new Set(Array.from({ length: 3000 }, (_, i) => i + 1)) },
    ]);
    assert.deepEqual(report, { records: 3000, lost: [], duplicates: [], outOfOrder: [], duplicateSeqs: [] });
  });
});
