/**
 * Power cuts under load, on the file system that loses what a power cut loses (test/support/lazyfs.ts): the
 * gateway's data folder lives on it, the cloud-stub's on the real disk. Each cut freezes the file system (from
 * that instant nothing more becomes durable; every other pair of cuts tears the last unsynced write at a page
 * boundary) and SIGKILLs the gateway; the file system is then mounted again with only what was fsynced, and the
 * gateway restarts on it. Every other cut comes while the cloud is down, so that the journal alone holds what the
 * devices were told. At the end every message a device got a PUBACK for must be at the cloud, once after dedupe,
 * in per-device order; with `--durability process`, every message PUBACKed more than PROCESS_BOUND_MS before a cut.
 *
 * The same cuts of the cloud-stub, its SQLite sink on the file system, check the backend's side.
 *
 * FLEETGATE_POWER_CUTS sets the number of cuts per test (6 by default, about 15 s each here; 20 for the long run).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSqliteGaps } from '@fleetgate/cloud-stub';
import { fileURLToPath } from 'node:url';
import { HEAL_MARKER, HEALING_FILE } from '../../gateway/src/journal/sqlite/heal.ts';
import { scribble } from '../support/damage.ts';
import { killAll, startScript } from '../support/fleetgate-process.ts';
import { readCloud, verifyDelivery, type DeliveryReport } from '../support/delivery.ts';
import { LAZYFS, LazyFs, unmountAll, type CutReport } from '../support/lazyfs.ts';
import { Stack } from '../support/stack.ts';
import { requireProgram } from '../support/system-packages.ts';
import { TestDevice, waitUntil } from '../support/test-device.ts';

const SDK_DEVICE = fileURLToPath(new URL('../support/sdk-device-process.ts', import.meta.url));
const CUTS = Number(process.env.FLEETGATE_POWER_CUTS ?? 6);
/**
 * What `--durability process` may lose: the journal fsyncs its WAL once a second (a passive checkpoint), so a
 * message PUBACKed more than a second before the cut was fsynced; the rest is the slack of the 1 s timer and of a
 * loaded machine.
 */
const PROCESS_BOUND_MS = 2000;

/** Waits until the gateway's journal is empty and its upstream acked everything (and, with gapsToo, no gap is pending). */
function untilDrained(stack: Stack, timeoutMs: number, { gapsToo = false } = {}): Promise<unknown> {
  return waitUntil(
    'the journal to drain to the cloud',
    async () => {
      const gw = await stack.gatewayStats();
      return (
        gw.journal.rows === 0 &&
        (!gapsToo || gw.journal.pendingGaps === 0) &&
        gw.upstreams[0]!.ackedThrough === gw.journal.lastSeq
      );
    },
    timeoutMs,
  );
}
const SNAPSHOT_EVERY_MS = 100;

interface Cut {
  after: number;
  torn: boolean;
  journaled: number;
  report: CutReport;
}

interface RunResult {
  cuts: Cut[];
  delivery: DeliveryReport;
  acked: number;
  /** Acked messages that did not arrive though acked more than PROCESS_BOUND_MS before a cut. */
  lostOutsideBound: string[];
}

describe('power cuts (gateway on a power-cut file system)', function () {
  this.timeout(60_000 + CUTS * 15_000);
  let root: string;
  let devices: TestDevice[] = [];

  before(function () {
    requireProgram(this, LAZYFS);
  });
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'fleetgate-power-'));
  });
  afterEach(async () => {
    await Promise.all(devices.map((d) => d.close()));
    devices = [];
    await killAll();
    await unmountAll();
    rmSync(root, { recursive: true, force: true });
  });

  const totalAcked = () => devices.reduce((n, d) => n + d.acked.size, 0);

  async function tortureRun(durability: 'power' | 'process'): Promise<RunResult> {
    const fs = await LazyFs.mount(join(root, 'fs'));
    // A folder the gateway makes itself: that its entry survives is the gateway's job too.
    const stack = await Stack.start(join(root, 'stack'), ['--durability', durability], undefined, {
      gateway: join(fs.path, 'site', 'gateway'),
    });
    devices = Array.from({ length: 10 }, (_, i) => new TestDevice(`dev-${String(i).padStart(2, '0')}`, stack.mqttPort, 20));
    await Promise.all(devices.map((d) => d.connected()));
    // What each device had been acked, every SNAPSHOT_EVERY_MS: at a cut, the snapshot PROCESS_BOUND_MS old says
    // what must survive it.
    const snapshots: Array<{ at: number; acked: Array<Set<number>> }> = [];
    const snap = () => snapshots.push({ at: Date.now(), acked: devices.map((d) => new Set(d.acked)) });
    const timer = setInterval(snap, SNAPSHOT_EVERY_MS);
    const mustSurvive: Array<Set<number>> = devices.map(() => new Set());
    // Acked before the previous cut: judged at that cut, by its own bound.
    let judged: Array<Set<number>> = devices.map(() => new Set());
    for (const d of devices) d.run();
    const cuts: Cut[] = [];
    try {
      for (let cut = 1; cut <= CUTS; cut++) {
        // A random moment: after a random number of further PUBACKs, so the devices are mid-stream.
        const more = 100 + Math.floor(Math.random() * 800);
        const target = totalAcked() + more;
        const backlog = cut % 2 === 1;
        if (backlog) await stack.cloud.kill();
        await waitUntil(`${more} more PUBACKs before cut ${cut}`, () => totalAcked() >= target, 30_000);
        const torn = cut % 4 < 2;
        const journaled = (await stack.gatewayStats()).journal.rows;
        const cutAt = Date.now();
        const report = await fs.cut({ torn });
        await stack.gateway.kill();
        const old = snapshots.filter((s) => s.at <= cutAt - PROCESS_BOUND_MS).at(-1);
        if (old) old.acked.forEach((acked, i) => acked.forEach((n) => judged[i]!.has(n) || mustSurvive[i]!.add(n)));
        judged = devices.map((d) => new Set(d.acked));
        snapshots.splice(0, snapshots.length);
        cuts.push({ after: more, torn, journaled, report });
        await fs.remount();
        if (backlog) await stack.startCloud();
        await stack.startGateway();
      }
      const target = totalAcked() + 300;
      await waitUntil('300 PUBACKs after the last restart', () => totalAcked() >= target, 30_000);
    } finally {
      clearInterval(timer);
    }
    await Promise.all(devices.map((d) => d.stop()));
    await untilDrained(stack, 30_000, { gapsToo: true });
    const delivery = verifyDelivery(
      readCloud(stack.cloudData),
      devices.map((d) => ({ deviceId: d.id, acked: d.acked, maxCopies: d.maxCopies })),
    );
    const lost = new Set(delivery.lost);
    const lostOutsideBound = devices.flatMap((d, i) =>
      [...mustSurvive[i]!].map((n) => `${d.id}:${n}`).filter((m) => lost.has(m)),
    );
    assert.deepEqual(readSqliteGaps(stack.cloudData), [], 'nothing was dropped or damaged');
    return { cuts, delivery, acked: totalAcked(), lostOutsideBound };
  }

  const describeCuts = (cuts: Cut[]) =>
    cuts.map((c) => `${c.after}${c.torn ? ' torn' : ''} (${c.journaled} in the journal)`).join(', ');
  const summary = (durability: string, { cuts, delivery, acked }: RunResult) =>
    `      ${durability}: ${CUTS} cuts (plan ${describeCuts(cuts)}), ${acked} PUBACKs checked against ` +
    `${delivery.records} records, ${delivery.lost.length} lost, ` +
    `${cuts.reduce((n, c) => n + c.report.unsyncedPagesBytes, 0)} unsynced bytes dropped, ` +
    `${cuts.reduce((n, c) => n + c.report.tornBytes, 0)} torn`;

  it(`power cuts - --durability power: ${CUTS} cuts under load (SIGKILL + unsynced writes dropped or torn); every PUBACKed message reaches the cloud once, in order`, async () => {
    const run = await tortureRun('power');
    assert.deepEqual(
      { ...run.delivery, records: 0 },
      { records: 0, lost: [], duplicates: [], outOfOrder: [], duplicateSeqs: [] },
      `cut plan ${describeCuts(run.cuts)}`,
    );
    assert.ok(run.delivery.records >= run.acked, `${run.delivery.records} records for ${run.acked} PUBACKs`);
    console.log(summary('power', run));
  });

  it(`power cuts - --durability process: ${CUTS} cuts under load lose at most what was PUBACKed in the last ${PROCESS_BOUND_MS} ms before each; the rest arrives once, in order`, async () => {
    const run = await tortureRun('process');
    assert.deepEqual(
      run.lostOutsideBound,
      [],
      `lost though acked ${PROCESS_BOUND_MS} ms before a cut; plan ${describeCuts(run.cuts)}`,
    );
    assert.deepEqual(
      { duplicates: run.delivery.duplicates, outOfOrder: run.delivery.outOfOrder, duplicateSeqs: run.delivery.duplicateSeqs },
      { duplicates: [], outOfOrder: [], duplicateSeqs: [] },
    );
    console.log(summary('process', run));
  });

  it(`power cuts - the cloud-stub's SQLite sink: ${CUTS} cuts of the backend under load; every PUBACKed message ends at the cloud once, in order`, async () => {
    const fs = await LazyFs.mount(join(root, 'fs'));
    const stack = await Stack.start(join(root, 'stack'), [], undefined, { cloud: join(fs.path, 'site', 'cloud') });
    devices = Array.from({ length: 10 }, (_, i) => new TestDevice(`dev-${String(i).padStart(2, '0')}`, stack.mqttPort, 20));
    await Promise.all(devices.map((d) => d.connected()));
    for (const d of devices) d.run();
    const plan: number[] = [];
    const dropped: number[] = [];
    for (let cut = 1; cut <= CUTS; cut++) {
      const more = 100 + Math.floor(Math.random() * 800);
      plan.push(more);
      const target = totalAcked() + more;
      await waitUntil(`${more} more PUBACKs before cut ${cut}`, () => totalAcked() >= target, 30_000);
      dropped.push((await fs.cut({ torn: cut % 2 === 0 })).unsyncedPagesBytes);
      await stack.cloud.kill();
      await fs.remount();
      await stack.startCloud();
    }
    const target = totalAcked() + 300;
    await waitUntil('300 PUBACKs after the last restart', () => totalAcked() >= target, 30_000);
    await Promise.all(devices.map((d) => d.stop()));
    await untilDrained(stack, 30_000);
    const records = readCloud(stack.cloudData);
    const delivery = verifyDelivery(
      records,
      devices.map((d) => ({ deviceId: d.id, acked: d.acked, maxCopies: d.maxCopies })),
    );
    assert.deepEqual(
      { ...delivery, records: 0 },
      { records: 0, lost: [], duplicates: [], outOfOrder: [], duplicateSeqs: [] },
      `plan ${plan.join(', ')}`,
    );
    console.log(
      `      sink: ${CUTS} cuts (plan ${plan.join(', ')}), ${totalAcked()} PUBACKs checked against ${records.length} records, ` +
        `${dropped.reduce((a, b) => a + b, 0)} unsynced bytes dropped`,
    );
  });

  it("power cuts - the device SDK's SQLite outbox: the device cut 3 times while sending 3,000; each arrives once, in order", async () => {
    const fs = await LazyFs.mount(join(root, 'fs'));
    // A rate limit at the gateway keeps part of the outbox unsent at each cut.
    const stack = await Stack.start(join(root, 'stack'), ['--rate-limit', '1000', '--rate-burst', '100']);
    const settings = {
      url: `127.0.0.1:${stack.deviceGrpcPort}`,
      deviceId: 'outbox-1',
      outboxPath: join(fs.path, 'device', 'outbox.db'),
      count: 3000,
    };
    const lastSeq = async () => (await stack.gatewayStats()).journal.lastSeq;
    for (let cut = 1; cut <= 3; cut++) {
      const device = startScript('device', SDK_DEVICE, [JSON.stringify({ ...settings, count: cut === 1 ? 3000 : 0 })]);
      // `queued` comes after flush(): the 3,000 are committed to the outbox (synchronous=FULL), acked or not.
      if (cut === 1) await device.waitForLine((line) => line.event === 'queued');
      // A resumed device says nothing per message: the gateway's journal counts them.
      const target = (await lastSeq()) + 200;
      await waitUntil(`200 more messages at the gateway before cut ${cut}`, async () => (await lastSeq()) >= target, 20_000);
      await fs.cut({ torn: cut === 2 });
      await device.kill();
      assert.ok((await lastSeq()) < 3000, 'the outbox still held messages at the cut');
      await fs.remount();
    }
    const last = startScript('device', SDK_DEVICE, [JSON.stringify({ ...settings, count: 0 })]);
    await last.waitForLine((line) => line.event === 'drained', 30_000);
    await untilDrained(stack, 30_000);
    const report = verifyDelivery(readCloud(stack.cloudData), [
      { deviceId: 'outbox-1', acked: new Set(Array.from({ length: 3000 }, (_, i) => i + 1)) },
    ]);
    assert.deepEqual(report, { records: 3000, lost: [], duplicates: [], outOfOrder: [], duplicateSeqs: [] });
  });

  // Restarted on a disk that is still full, the gateway must free rows as the cloud acks them, though SQLite needs
  // WAL room to delete: the journal's reserve (journal/sqlite/reserve.ts) is that room, and the WAL is kept within
  // it so that a checkpoint never needs as much room again as the data.
  it('power cuts - a cut while the disk is full (ENOSPC from the file system): the acked messages survive, and the gateway serves on after it', async () => {
    const fs = await LazyFs.mount(join(root, 'fs'), { capacityBytes: 3 * 1024 * 1024 });
    const stack = await Stack.start(join(root, 'stack'), [], undefined, { gateway: join(fs.path, 'gateway') });
    await stack.cloud.kill(); // the journal fills up
    devices = Array.from({ length: 10 }, (_, i) => new TestDevice(`dev-${String(i).padStart(2, '0')}`, stack.mqttPort, 20));
    await Promise.all(devices.map((d) => d.connected()));
    for (const d of devices) d.run();
    await waitUntil('the disk to be full', async () => (await stack.gatewayStats()).journal.diskFull, 30_000);
    const ackedWhenFull = totalAcked();
    await fs.cut({ torn: true });
    await stack.gateway.kill();
    await fs.remount();
    await stack.startCloud();
    await stack.startGateway();
    const target = totalAcked() + 300;
    await waitUntil('300 PUBACKs after the restart', () => totalAcked() >= target, 30_000);
    await Promise.all(devices.map((d) => d.stop()));
    await untilDrained(stack, 30_000);
    const delivery = verifyDelivery(
      readCloud(stack.cloudData),
      devices.map((d) => ({ deviceId: d.id, acked: d.acked, maxCopies: d.maxCopies })),
    );
    assert.deepEqual({ ...delivery, records: 0 }, { records: 0, lost: [], duplicates: [], outOfOrder: [], duplicateSeqs: [] });
    assert.deepEqual(readSqliteGaps(stack.cloudData), [], 'nothing was dropped or damaged');
    console.log(
      `      disk full: ${ackedWhenFull} PUBACKs before the full disk and the cut, ${delivery.records} records checked`,
    );
  });

  it('power cuts - a cut in the middle of healing a damaged journal: the next start heals again, and every acked message arrives or is counted in a gap', async () => {
    const fs = await LazyFs.mount(join(root, 'fs'));
    const gatewayDir = join(fs.path, 'gateway');
    const stack = await Stack.start(join(root, 'stack'), [], undefined, { gateway: gatewayDir });
    await stack.cloud.kill(); // the journal alone holds them
    devices = Array.from({ length: 20 }, (_, i) => new TestDevice(`dev-${String(i).padStart(2, '0')}`, stack.mqttPort, 20));
    await Promise.all(devices.map((d) => d.connected()));
    await Promise.all(devices.map((d) => d.publishUpTo(2000)));
    await Promise.all(devices.map((d) => d.close()));
    assert.equal(await stack.gateway.stop(), 0);
    const file = join(gatewayDir, 'journal.db');
    const pages = Math.floor(statSync(file).size / 4096);
    for (const at of [0.4, 0.8]) scribble(file, Math.floor(pages * at) * 4096, 2000, { fsync: true });

    // Started, and cut while the salvage writes its file: before the healed journal replaced the damaged one.
    const started = stack.startGateway().then(
      () => 'ready',
      () => 'exited',
    );
    await waitUntil('the heal to write its file', () => existsSync(join(gatewayDir, HEALING_FILE)), 30_000, 2);
    await fs.cut();
    await killAll();
    assert.equal(await started, 'exited', 'the cut came before the gateway was ready');
    await fs.remount();
    assert.ok(existsSync(join(gatewayDir, HEAL_MARKER)), 'the heal was under way at the cut');

    await stack.startCloud();
    await stack.startGateway();
    const healed = await stack.gateway.findLine((l) => /journal was damaged/.test(String(l.msg)));
    assert.match(String(healed.damage), /the first heal was interrupted/);
    assert.ok(Number(healed.salvaged) > 30_000, `salvaged ${healed.salvaged} of 40,000`);
    assert.ok(!existsSync(join(gatewayDir, HEAL_MARKER)) && !existsSync(join(gatewayDir, HEALING_FILE)));
    await untilDrained(stack, 60_000, { gapsToo: true });
    const delivery = verifyDelivery(
      readCloud(stack.cloudData),
      devices.map((d) => ({ deviceId: d.id, acked: d.acked })),
    );
    assert.deepEqual([delivery.duplicates, delivery.outOfOrder, delivery.duplicateSeqs], [[], [], []]);
    const gaps = readSqliteGaps(stack.cloudData);
    assert.ok(gaps.length > 0 && gaps.every((g) => g.reason === 'journal-damaged'));
    assert.equal(
      delivery.lost.length,
      (await stack.cloudStats()).recordsLostInGaps,
      'every acked message that did not arrive is counted in a gap',
    );
    console.log(
      `      heal cut: ${healed.salvaged} of ${totalAcked()} PUBACKed salvaged after the interrupted heal, ${delivery.lost.length} in gaps`,
    );
  });

  it(`power cuts - --durability process, light load: what was PUBACKed ${PROCESS_BOUND_MS} ms before a cut survives it (the 1 s WAL sync, not only SQLite's checkpoint at 1,000 pages)`, async () => {
    const fs = await LazyFs.mount(join(root, 'fs'));
    const stack = await Stack.start(join(root, 'stack'), ['--durability', 'process'], undefined, {
      gateway: join(fs.path, 'gateway'),
    });
    await stack.cloud.kill(); // the journal alone holds them
    const device = new TestDevice('dev-light', stack.mqttPort, 1);
    devices = [device];
    await device.connected();
    await device.publishUpTo(20);
    const journaled = Date.now();
    await waitUntil(`${PROCESS_BOUND_MS} ms`, () => Date.now() - journaled >= PROCESS_BOUND_MS, PROCESS_BOUND_MS + 2000);
    await fs.cut();
    await stack.gateway.kill();
    await fs.remount();
    await stack.startCloud();
    await stack.startGateway();
    await untilDrained(stack, 20_000);
    const delivery = verifyDelivery(readCloud(stack.cloudData), [{ deviceId: device.id, acked: device.acked }]);
    assert.deepEqual(delivery.lost, []);
  });
});
