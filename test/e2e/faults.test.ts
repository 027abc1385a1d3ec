/**
 * Faults and limits end to end, with real processes and files: gateways SIGKILLed at random moments, a backend
 * that goes away, journals that fill up (by their limit and by a full disk), journal files damaged three ways,
 * a record the backend refuses, and a SIGTERM under load. Each test ends by checking what the cloud holds
 * against what the devices were told was safe, and against the gaps the gateway reported.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rmSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { readSqliteGaps, type ExportedGap, type ExportedRecord } from '@fleetgate/cloud-stub';
import { checkWal } from '../../gateway/src/journal/sqlite/page-scan.ts';
import { FLEETGATE_BIN, killAll } from '../support/fleetgate-process.ts';
import { scribble } from '../support/damage.ts';
import { readCloud, verifyDelivery, type DeviceExpectation } from '../support/delivery.ts';
import { Stack } from '../support/stack.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { TestDevice, waitUntil } from '../support/test-device.ts';

describe('faults and limits (end to end)', function () {
  this.timeout(180_000);
  const dir = useTempDir();
  let devices: TestDevice[] = [];

  afterEach(async () => {
    await Promise.all(devices.map((d) => d.close()));
    devices = [];
    await killAll();
  });

  const connectDevices = async (stack: Stack, count: number, prefix = 'dev') => {
    const fresh = Array.from(
      { length: count },
      (_, i) => new TestDevice(`${prefix}-${String(i).padStart(2, '0')}`, stack.mqttPort, 20),
    );
    devices.push(...fresh);
    await Promise.all(fresh.map((d) => d.connected()));
    return fresh;
  };
  const totalAcked = () => devices.reduce((n, d) => n + d.acked.size, 0);
  const expectations = (extraRepeats = new Map<string, Set<number>>()): DeviceExpectation[] =>
    devices.map((d) => ({
      deviceId: d.id,
      acked: d.acked,
      mayRepeat: extraRepeats.get(d.id) ?? new Set(),
      maxCopies: d.maxCopies,
    }));
  const gatewayData = (stack: Stack) => join(stack.dir, 'gateway');

  /** The journal is empty, every gap acknowledged, and the cloud acknowledged everything up to the last seq. */
  const drained = (stack: Stack, timeoutMs = 60_000) =>
    waitUntil(
      'the journal to drain to the cloud',
      async () => {
        const gw = await stack.gatewayStats();
        return gw.journal.rows === 0 && gw.journal.pendingGaps === 0 && gw.upstreams[0]!.ackedThrough === gw.journal.lastSeq;
      },
      timeoutMs,
    );

  /** Every seq from 1 to lastSeq is a record at the cloud or inside exactly one reported gap, never both. */
  const assertSeqsAccountedFor = (records: readonly ExportedRecord[], gaps: readonly ExportedGap[], lastSeq: number) => {
    const owner = new Map<number, string>();
    for (const r of records) owner.set(r.seq, 'record');
    for (const g of gaps) {
      for (let seq = g.fromSeq; seq <= g.toSeq; seq++) {
        assert.ok(!owner.has(seq), `seq ${seq} is both ${owner.get(seq)} and in the ${g.reason} gap ${g.fromSeq}..${g.toSeq}`);
        owner.set(seq, 'gap');
      }
    }
    for (let seq = 1; seq <= lastSeq; seq++) assert.ok(owner.has(seq), `seq ${seq} is neither at the cloud nor in a gap`);
  };

  it('faults - torture: 20 devices publishing while the gateway is SIGKILLed 6 times and the cloud-stub once; every PUBACK arrives once, in order', async () => {
    const stack = await Stack.start(dir.path);
    await connectDevices(stack, 20);
    for (const d of devices) d.run();
    const repeats = new Map(devices.map((d) => [d.id, new Set<number>()]));
    const plan: number[] = [];
    for (let kill = 1; kill <= 6; kill++) {
      // A random moment: after a random number of further PUBACKs (so the devices are mid-stream).
      const more = 200 + Math.floor(Math.random() * 1500);
      plan.push(more);
      const target = totalAcked() + more;
      await waitUntil(`${more} more PUBACKs before kill ${kill} (plan ${plan.join(', ')})`, () => totalAcked() >= target, 60_000);
      for (const d of devices) for (const n of d.inFlight) repeats.get(d.id)!.add(n);
      await stack.gateway.kill();
      for (const d of devices) for (const n of d.inFlight) repeats.get(d.id)!.add(n);
      if (kill === 3) {
        await stack.cloud.kill();
        await stack.startCloud();
      }
      await stack.startGateway();
    }
    const target = totalAcked() + 1000;
    await waitUntil('1,000 PUBACKs after the last restart', () => totalAcked() >= target, 60_000);
    await Promise.all(devices.map((d) => d.stop()));
    await drained(stack);

    const report = verifyDelivery(readCloud(stack.cloudData), expectations(repeats));
    assert.deepEqual(
      { ...report, records: 0 },
      { records: 0, lost: [], duplicates: [], outOfOrder: [], duplicateSeqs: [] },
      `kill plan ${plan.join(', ')}`,
    );
    assert.ok(report.records >= target);
    assert.deepEqual(readSqliteGaps(stack.cloudData), [], 'nothing was dropped');
  });

  it('faults - the backend down for a while, then back with little credit: the backlog drains, live data goes first, nothing is lost', async () => {
    const stack = await Stack.start(dir.path, ['--batch-max-records', '50']);
    await stack.cloud.kill();
    await connectDevices(stack, 10, 'backlog');
    await Promise.all(devices.map((d) => d.publishUpTo(1500))); // 15,000 records journaled while the backend is away
    const backlogLastSeq = (await stack.gatewayStats()).journal.lastSeq;
    assert.equal(backlogLastSeq, 15_000);

    // Back, granting 3 batches of credit: the live lane keeps 2, the backlog drains one batch at a time.
    await stack.startCloud(['--credit', '3']);
    const [live] = await connectDevices(stack, 1, 'live');
    await waitUntil('the gateway to reconnect', async () => (await stack.cloudStats()).records > 0);
    await live!.publishUpTo(100);
    await drained(stack);

    const records = readCloud(stack.cloudData); // in the cloud's commit order
    const report = verifyDelivery(records, expectations());
    assert.deepEqual({ ...report, records: 0 }, { records: 0, lost: [], duplicates: [], outOfOrder: [], duplicateSeqs: [] });
    assert.equal(report.records, 15_100);
    const firstLive = records.findIndex((r) => r.deviceId === 'live-00');
    const lastBacklog = records.findLastIndex((r) => r.seq <= backlogLastSeq);
    assert.ok(
      firstLive >= 0 && firstLive < lastBacklog,
      `live data committed before the backlog finished (first live at ${firstLive}, last backlog at ${lastBacklog})`,
    );
    const liveAheadOf = records.slice(firstLive).filter((r) => r.seq <= backlogLastSeq).length;
    assert.ok(liveAheadOf > 1000, `${liveAheadOf} backlog records were still waiting when live data arrived`);
  });

  it('faults - journal full, drop-oldest: the oldest records are dropped and reported upstream as gaps with exact ranges', async () => {
    const stack = await Stack.start(dir.path, ['--journal-max-bytes', '20KB']);
    await stack.cloud.kill();
    await connectDevices(stack, 10);
    await Promise.all(devices.map((d) => d.publishUpTo(500))); // 5,000 x ~10 bytes: more than twice the limit
    const before = await stack.gatewayStats();
    assert.ok(before.journal.dropped['journal-full'] > 2000, `dropped ${before.journal.dropped['journal-full']}`);
    assert.ok(before.journal.payloadBytes <= 20_000);
    await stack.startCloud();
    await drained(stack);

    const records = readCloud(stack.cloudData);
    const gaps = readSqliteGaps(stack.cloudData);
    assert.ok(gaps.length > 0 && gaps.every((g) => g.reason === 'journal-full'));
    const lost = gaps.reduce((n, g) => n + g.count, 0);
    assert.equal(lost, before.journal.dropped['journal-full'], 'every dropped record is in a gap');
    assertSeqsAccountedFor(records, gaps, 5000);
    // The oldest went: what arrived is the newest of each device, in order, and exactly the rest is missing.
    const report = verifyDelivery(records, expectations());
    assert.deepEqual(report.duplicates, []);
    assert.deepEqual(report.outOfOrder, []);
    assert.equal(report.lost.length, lost);
    assert.equal(records.length + lost, 5000);
    assert.equal(Math.min(...records.map((r) => r.seq)), gaps.at(-1)!.toSeq + 1, 'the oldest were dropped, not the newest');
    const cloud = await stack.cloudStats();
    assert.equal(cloud.recordsLostInGaps, lost);
  });

  it('faults - journal full, reject-new: devices are refused (no PUBACK) and keep their data; nothing is dropped', async () => {
    const stack = await Stack.start(dir.path, ['--journal-max-bytes', '20KB', '--journal-full', 'reject-new']);
    await stack.cloud.kill();
    await connectDevices(stack, 10);
    const published = Promise.all(devices.map((d) => d.publishUpTo(500)));
    await waitUntil(
      'appends refused for a full journal',
      async () => (await stack.gatewayStats()).ingress.refusals['journal-full'] > 0,
    );
    const full = await stack.gatewayStats();
    assert.ok(full.journal.payloadBytes <= 20_000);
    assert.ok(totalAcked() < 5000, 'not everything could be acknowledged');
    await stack.startCloud();
    await published; // the devices' resends go through once the backend frees room
    await drained(stack);

    const report = verifyDelivery(readCloud(stack.cloudData), expectations());
    assert.deepEqual({ ...report, records: 0 }, { records: 0, lost: [], duplicates: [], outOfOrder: [], duplicateSeqs: [] });
    assert.equal(totalAcked(), 5000);
    assert.deepEqual(readSqliteGaps(stack.cloudData), []);
    const gw = await stack.gatewayStats();
    assert.equal(gw.journal.dropped['journal-full'], 0);
    assert.ok(gw.journal.rejectedAppends > 0);
  });

  it('faults - a full disk (journal file capped): appends are refused, and resume by themselves once acks free space', async () => {
    const stack = await Stack.start(dir.path, ['--journal-max-file-bytes', '600KB']);
    await stack.cloud.kill();
    await connectDevices(stack, 20);
    const published = Promise.all(devices.map((d) => d.publishUpTo(1000)));
    await waitUntil('the disk to be full', async () => (await stack.gatewayStats()).journal.diskFull, 60_000);
    await stack.gateway.findLine((l) => /disk is full/.test(String(l.msg)));
    assert.ok((await stack.gatewayStats()).ingress.refusals['journal-full'] > 0);
    await stack.startCloud();
    await stack.gateway.findLine((l) => /disk takes writes again/.test(String(l.msg)), 60_000);
    await published;
    await drained(stack);

    const report = verifyDelivery(readCloud(stack.cloudData), expectations());
    assert.deepEqual({ ...report, records: 0 }, { records: 0, lost: [], duplicates: [], outOfOrder: [], duplicateSeqs: [] });
    assert.equal(totalAcked(), 20_000);
    assert.equal((await stack.gatewayStats()).journal.diskFull, false);
  });

  for (const damage of ['truncated file', 'flipped bytes', 'WAL frame broken in the middle'] as const) {
    it(`faults - damaged journal (${damage}): the gateway starts, salvages what it can read, reports the rest, and serves on`, async () => {
      const stack = await Stack.start(dir.path);
      await stack.cloud.kill();
      await connectDevices(stack, 10);
      await Promise.all(devices.map((d) => d.publishUpTo(600)));
      // A crash leaves the newest pages in the WAL; a clean stop checkpoints them into the file.
      if (damage === 'WAL frame broken in the middle') await stack.gateway.kill();
      else assert.equal(await stack.gateway.stop(), 0);

      const file = join(gatewayData(stack), 'journal.db');
      if (damage === 'truncated file') {
        truncateSync(file, Math.floor(statSync(file).size * 0.7));
      } else if (damage === 'flipped bytes') {
        const pages = Math.floor(statSync(file).size / 4096);
        for (const at of [0.4, 0.8]) scribble(file, Math.floor(pages * at) * 4096, 2000);
      } else {
        const wal = checkWal(`${file}-wal`);
        assert.ok(wal && wal.frames > 4, 'the killed gateway left a WAL');
        scribble(`${file}-wal`, 32 + Math.floor(wal.frames / 2) * (24 + wal.pageSize) + 24 + 100, 64);
      }

      await stack.startGateway();
      const healed = await stack.gateway.findLine((l) => /journal was damaged/.test(String(l.msg)));
      assert.ok(Number(healed.salvaged) > 0, `salvaged ${healed.salvaged}`);
      const gw = await stack.gatewayStats();
      assert.ok(gw.journal.healed, 'stats say the journal was healed');
      // It serves on: new messages are journaled and delivered after the salvaged ones.
      const [late] = await connectDevices(stack, 1, 'late');
      await late!.publishUpTo(50);
      await stack.startCloud();
      await drained(stack);

      const records = readCloud(stack.cloudData);
      const gaps = readSqliteGaps(stack.cloudData);
      assertSeqsAccountedFor(records, gaps, gw.journal.lastSeq);
      assert.ok(gaps.every((g) => g.reason === 'journal-damaged'));
      const report = verifyDelivery(records, expectations());
      assert.deepEqual(report.duplicates, []);
      assert.deepEqual(report.duplicateSeqs, []);
      assert.deepEqual(report.outOfOrder, []);
      assert.equal(report.lost.filter((m) => m.startsWith('late-')).length, 0, 'what came after the healing is all there');
      const lostAtCloud = (await stack.cloudStats()).recordsLostInGaps;
      assert.equal(report.lost.length, lostAtCloud, 'every acked message that did not arrive is counted in a gap');
      // One broken frame is one page: about a hundred of these small rows at most, older copies aside.
      if (damage === 'WAL frame broken in the middle')
        assert.ok(report.lost.length < 300, `${report.lost.length} of 6,000 lost from one broken WAL frame`);
    });
  }

  it('faults - a lost data folder: the new journal moves its records above the seqs the backend holds, none is dropped as a resend', async () => {
    const stack = await Stack.start(dir.path);
    await connectDevices(stack, 5);
    await Promise.all(devices.map((d) => d.publishUpTo(200)));
    await drained(stack);
    assert.equal(await stack.gateway.stop(), 0);
    rmSync(gatewayData(stack), { recursive: true });

    await stack.cloud.kill(); // so that the new journal first fills with seqs the backend already holds
    await stack.startGateway();
    await Promise.all(devices.map((d) => d.publishUpTo(400)));
    assert.equal((await stack.gatewayStats()).journal.lastSeq, 1000, 'seqs 1..1000 again');
    await stack.startCloud();
    await stack.gateway.findLine((l) => /renumbered/.test(String(l.msg)));
    await drained(stack);

    const report = verifyDelivery(readCloud(stack.cloudData), expectations());
    assert.deepEqual(report, { records: 2000, lost: [], duplicates: [], outOfOrder: [], duplicateSeqs: [] });
    assert.equal((await stack.cloudStats()).duplicates, 0);
  });

  it('faults - a poison record ends in the dead-letter table, the stream goes on, and `fleetgate deadletter` replays it', async () => {
    const stack = await Stack.start(dir.path);
    await stack.faults({ rejectPayloads: 'poison-00:7' });
    const [poison] = await connectDevices(stack, 1, 'poison');
    const others = await connectDevices(stack, 5);
    await Promise.all([poison!.publishUpTo(9), ...others.map((d) => d.publishUpTo(200))]);
    await waitUntil('a dead letter', async () => (await stack.gatewayStats()).journal.deadLetters === 1);
    await drained(stack);

    let records = readCloud(stack.cloudData);
    assert.equal(records.length, 5 * 200 + 9 - 1);
    assert.ok(!records.some((r) => Buffer.from(r.payload, 'base64').toString() === 'poison-00:7'));
    const data = ['--data', gatewayData(stack)];
    const list = await fleetgate(['deadletter', 'list', ...data]);
    assert.match(list, /poison-00\t-\t11\t.*refused by fault injection/);
    const seq = Number(/^(\d+)\tpoison-00/m.exec(list)![1]);
    assert.match(await fleetgate(['deadletter', 'show', String(seq), ...data]), /payload \(11 bytes, text\):\npoison-00:7/);
    await assert.rejects(fleetgate(['deadletter', 'show', '999999', ...data]), /no dead letter with seq 999999/);

    // The backend is fixed; the letter is replayed as a new record and arrives.
    await stack.faults({ rejectPayloads: null });
    assert.match(await fleetgate(['deadletter', 'replay', String(seq), ...data]), /1 dead letter marked for replay/);
    await waitUntil(
      'the replayed letter at the cloud',
      () => readCloud(stack.cloudData).some((r) => Buffer.from(r.payload, 'base64').toString() === 'poison-00:7'),
      30_000,
    );
    assert.match(await fleetgate(['deadletter', 'list', ...data]), /no dead letters/);
    records = readCloud(stack.cloudData);
    assert.equal(records.length, 5 * 200 + 9);
    assert.ok(
      records.find((r) => Buffer.from(r.payload, 'base64').toString() === 'poison-00:7')!.seq > seq,
      'replayed under a new seq',
    );
  });

  it('faults - SIGTERM while the backend withholds acks: the grace period runs out, exit 0, the batches are resent after the restart', async () => {
    const stack = await Stack.start(dir.path, ['--drain-grace-ms', '1500']);
    await stack.holdAcks(true);
    await connectDevices(stack, 5);
    await Promise.all(devices.map((d) => d.publishUpTo(400)));
    await waitUntil('batches in flight', async () => (await stack.gatewayStats()).upstreams[0]!.batchesInFlight > 0);
    const stopping = performance.now();
    assert.equal(await stack.gateway.stop(30_000), 0);
    const tookMs = performance.now() - stopping;
    assert.ok(tookMs >= 1400 && tookMs < 10_000, `stopped after ${Math.round(tookMs)} ms`);
    assert.ok(stack.gateway.lines.some((l) => /grace period over/.test(l)));

    await stack.holdAcks(false);
    await stack.startGateway();
    await drained(stack);
    const report = verifyDelivery(readCloud(stack.cloudData), expectations());
    assert.deepEqual(report, { records: 2000, lost: [], duplicates: [], outOfOrder: [], duplicateSeqs: [] });
  });

  it('faults - SIGTERM under load: the gateway drains and exits 0; restarted, nothing acknowledged is missing', async () => {
    const stack = await Stack.start(dir.path);
    await connectDevices(stack, 20);
    for (const d of devices) d.run();
    await waitUntil('5,000 PUBACKs', () => totalAcked() >= 5000);
    const repeats = new Map(devices.map((d) => [d.id, new Set(d.inFlight)]));
    const code = await stack.gateway.stop(30_000);
    assert.equal(code, 0);
    assert.ok(
      stack.gateway.lines.some((l) => /in-flight batches acked/.test(l)),
      'it waited for the acks',
    );
    for (const d of devices) for (const n of d.inFlight) repeats.get(d.id)!.add(n);

    await stack.startGateway();
    const target = totalAcked() + 1000;
    await waitUntil('1,000 more PUBACKs', () => totalAcked() >= target);
    await Promise.all(devices.map((d) => d.stop()));
    await drained(stack);
    const report = verifyDelivery(readCloud(stack.cloudData), expectations(repeats));
    assert.deepEqual({ ...report, records: 0 }, { records: 0, lost: [], duplicates: [], outOfOrder: [], duplicateSeqs: [] });
  });
});

/** Runs the CLI; resolves with its standard output, rejects with its standard error. */
async function fleetgate(args: string[]): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [FLEETGATE_BIN, ...args], { timeout: 30_000 });
    return stdout;
  } catch (err: unknown) {
    const { stderr } = err as { stderr?: string };
    throw new Error(stderr || String(err));
  }
}
