/**
 * Power cuts under load, on the file system that loses what a power cut loses (test/support/lazyfs.ts): the
 * gateway's data folder lives on it, the cloud-stub's on the real disk. Each cut freezes the file system (from
 * that instant nothing more becomes durable, and every other cut tears the last unsynced write at a page
 * boundary) and SIGKILLs the gateway; the file system is then mounted again with only what was fsynced, and the
 * gateway restarts on it. At the end every message a device got a PUBACK for must be at the cloud, once after
 * dedupe, in per-device order.
 *
 * FLEETGATE_POWER_CUTS sets the number of cuts (6 by default, which runs in about 40 s here; 20 for the long run).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSqliteGaps } from '@fleetgate/cloud-stub';
import { killAll } from '../support/fleetgate-process.ts';
import { readCloud, verifyDelivery } from '../support/delivery.ts';
import { LAZYFS, LazyFs, unmountAll, type CutReport } from '../support/lazyfs.ts';
import { Stack } from '../support/stack.ts';
import { requireProgram } from '../support/system-packages.ts';
import { TestDevice, waitUntil } from '../support/test-device.ts';

const CUTS = Number(process.env.FLEETGATE_POWER_CUTS ?? 6);

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

  it(`power cuts - --durability power: ${CUTS} cuts under load (SIGKILL + unsynced writes dropped or torn); every PUBACKed message reaches the cloud once, in order`, async () => {
    const fs = await LazyFs.mount(join(root, 'fs'));
    // A folder the gateway makes itself: that its entry survives is the gateway's job too.
    const stack = await Stack.start(join(root, 'stack'), ['--durability', 'power'], undefined, join(fs.path, 'site', 'gateway'));
    devices = Array.from({ length: 10 }, (_, i) => new TestDevice(`dev-${String(i).padStart(2, '0')}`, stack.mqttPort, 20));
    await Promise.all(devices.map((d) => d.connected()));
    for (const d of devices) d.run();
    const cuts: Array<{ after: number; torn: boolean; journaled: number; report: CutReport }> = [];
    for (let cut = 1; cut <= CUTS; cut++) {
      // A random moment: after a random number of further PUBACKs, so the devices are mid-stream.
      const more = 100 + Math.floor(Math.random() * 800);
      const target = totalAcked() + more;
      // Every other cut finds a backlog: the cloud is down, so the journal alone holds what devices were told.
      const backlog = cut % 2 === 1;
      if (backlog) await stack.cloud.kill();
      await waitUntil(`${more} more PUBACKs before cut ${cut}`, () => totalAcked() >= target, 30_000);
      const torn = cut % 4 < 2;
      const journaled = (await stack.gatewayStats()).journal.rows;
      const report = await fs.cut({ torn });
      await stack.gateway.kill();
      cuts.push({ after: more, torn, journaled, report });
      await fs.remount();
      if (backlog) await stack.startCloud();
      await stack.startGateway();
    }
    const target = totalAcked() + 300;
    await waitUntil('300 PUBACKs after the last restart', () => totalAcked() >= target, 30_000);
    await Promise.all(devices.map((d) => d.stop()));
    await waitUntil(
      'the journal to drain to the cloud',
      async () => {
        const gw = await stack.gatewayStats();
        return gw.journal.rows === 0 && gw.journal.pendingGaps === 0 && gw.upstreams[0]!.ackedThrough === gw.journal.lastSeq;
      },
      30_000,
    );

    const report = verifyDelivery(
      readCloud(stack.cloudData),
      devices.map((d) => ({ deviceId: d.id, acked: d.acked, maxCopies: d.maxCopies })),
    );
    const plan = cuts.map((c) => `${c.after}${c.torn ? ' torn' : ''} (${c.journaled} in the journal)`).join(', ');
    assert.deepEqual(
      { ...report, records: 0 },
      { records: 0, lost: [], duplicates: [], outOfOrder: [], duplicateSeqs: [] },
      `cut plan ${plan}`,
    );
    assert.ok(report.records >= totalAcked(), `${report.records} records for ${totalAcked()} PUBACKs`);
    assert.deepEqual(readSqliteGaps(stack.cloudData), [], 'nothing was dropped or damaged');
    const dropped = cuts.reduce((n, c) => n + c.report.unsyncedPagesBytes, 0);
    console.log(
      `      ${CUTS} cuts (plan ${plan}), ${totalAcked()} PUBACKs checked against ${report.records} records, ` +
        `${dropped} unsynced bytes dropped, ${cuts.reduce((n, c) => n + c.report.tornBytes, 0)} torn`,
    );
  });
});
