import assert from 'node:assert/strict';
import type { ExportedRecord, Sink, SinkRecord } from '@fleetgate/cloud-stub';
import { useTempDir } from '../support/temp-dir.ts';

export function sinkRecord(seq: number, deviceId = `dev-${seq % 3}`): SinkRecord {
  return {
    seq,
    deviceId,
    stream: seq % 2 === 0 ? '' : 'vibration',
    deviceSeq: seq * 10,
    deviceTimeMs: 1_700_000_000_000 + seq,
    gatewayTimeMs: 1_700_000_001_000 + seq,
    payload: Buffer.from(`payload-${seq}`),
    contentType: seq % 3 === 0 ? 'application/json' : '',
  };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => sinkRecord(from + i));

async function exported(sink: Sink): Promise<ExportedRecord[]> {
  const out: ExportedRecord[] = [];
  for await (const r of sink.exportRecords()) out.push(r);
  return out;
}

/** What every Sink must do. `open(dir)` opens the sink kept in `dir`; opening it again must find what was committed. */
export function sinkContract(name: string, open: (dir: string) => Sink | Promise<Sink>): void {
  describe(`sink contract - ${name}`, function () {
    const dir = useTempDir();
    let sink: Sink;
    beforeEach(async () => {
      sink = await open(dir.path);
    });
    afterEach(async () => sink.close());

    it('sink - commits records and exports them in commit order with every field', async () => {
      assert.deepEqual(
        await sink.commit([
          { gatewayId: 'gw-a', records: range(1, 3) },
          { gatewayId: 'gw-b', records: range(1, 1) },
        ]),
        [
          { inserted: 3, duplicates: 0 },
          { inserted: 1, duplicates: 0 },
        ],
      );
      await sink.commit([{ gatewayId: 'gw-a', records: range(4, 4) }]);
      const records = await exported(sink);
      assert.deepEqual(
        records.map((r) => `${r.gatewayId}/${r.seq}`),
        ['gw-a/1', 'gw-a/2', 'gw-a/3', 'gw-b/1', 'gw-a/4'],
      );
      const first = records[0]!;
      const expected = sinkRecord(1);
      assert.deepEqual(
        { ...first, receivedTime: 0 },
        {
          gatewayId: 'gw-a',
          seq: 1,
          deviceId: expected.deviceId,
          stream: expected.stream,
          payload: Buffer.from(expected.payload).toString('base64'),
          contentType: expected.contentType,
          deviceSeq: expected.deviceSeq,
          deviceTime: expected.deviceTimeMs,
          gatewayTime: expected.gatewayTimeMs,
          receivedTime: 0,
        },
      );
      assert.ok(first.receivedTime > 0);
    });

    it('sink - a resend is stored once, whether it comes alone, mixed with fresh records or in the same commit', async () => {
      await sink.commit([{ gatewayId: 'gw-a', records: range(1, 5) }]);
      const outcomes = await sink.commit([
        { gatewayId: 'gw-a', records: range(3, 7) },
        { gatewayId: 'gw-a', records: range(6, 8) },
        { gatewayId: 'gw-a', records: range(1, 2) },
      ]);
      assert.deepEqual(outcomes, [
        { inserted: 2, duplicates: 3 },
        { inserted: 1, duplicates: 2 },
        { inserted: 0, duplicates: 2 },
      ]);
      assert.deepEqual(
        (await exported(sink)).map((r) => r.seq),
        [1, 2, 3, 4, 5, 6, 7, 8],
      );
      const stats = await sink.stats();
      assert.equal(stats.records, 8);
      assert.equal(stats.duplicates, 7);
      assert.deepEqual(stats.gateways['gw-a'], { lastSeq: 8, records: 8, duplicates: 7 });
    });

    it('sink - gaps are kept and counted; what the sink holds from the range of a gap is not counted as lost', async () => {
      await sink.commit([{ gatewayId: 'gw-a', records: range(1, 10) }]);
      await sink.recordGap('gw-a', { fromSeq: 11, toSeq: 20, reason: 'journal-full', count: 10, timeMs: 5 });
      await sink.recordGap('gw-a', { fromSeq: 5, toSeq: 30, reason: 'journal-damaged', count: 26, timeMs: 6 });
      const stats = await sink.stats();
      assert.equal(stats.gaps, 2);
      assert.equal(stats.recordsLostInGaps, 10 + (26 - 6));
    });

    it('sink - a gap filled later is stored, not taken for a duplicate', async () => {
      await sink.commit([{ gatewayId: 'gw-a', records: [sinkRecord(1), sinkRecord(5)] }]);
      assert.deepEqual(await sink.commit([{ gatewayId: 'gw-a', records: range(2, 6) }]), [{ inserted: 4, duplicates: 1 }]);
      assert.deepEqual(
        (await exported(sink)).map((r) => r.seq).sort((a, b) => a - b),
        [1, 2, 3, 4, 5, 6],
      );
    });

    it('sink - the same seq from two gateways is two records', async () => {
      await sink.commit([
        { gatewayId: 'gw-a', records: range(1, 2) },
        { gatewayId: 'gw-b', records: range(1, 2) },
      ]);
      const stats = await sink.stats();
      assert.equal(stats.records, 4);
      assert.equal(stats.duplicates, 0);
      assert.equal(await sink.lastSeq('gw-a'), 2);
      assert.equal(await sink.lastSeq('gw-b'), 2);
      assert.equal(await sink.lastSeq('gw-unknown'), 0);
    });

    it('sink - counts records per device', async () => {
      await sink.commit([{ gatewayId: 'gw-a', records: [sinkRecord(1, 'x'), sinkRecord(2, 'y'), sinkRecord(3, 'x')] }]);
      await sink.commit([{ gatewayId: 'gw-a', records: [sinkRecord(3, 'x'), sinkRecord(4, 'x')] }]);
      assert.deepEqual((await sink.stats()).devices, { x: 3, y: 1 });
    });

    it('sink - a commit that fails stores nothing and leaves the sink as it was', async () => {
      await sink.commit([{ gatewayId: 'gw-a', records: range(1, 2) }]);
      const bad = { ...sinkRecord(4), deviceId: null as unknown as string };
      await assert.rejects(sink.commit([{ gatewayId: 'gw-a', records: [sinkRecord(3), bad] }]));
      assert.equal(await sink.lastSeq('gw-a'), 2);
      assert.equal((await sink.stats()).records, 2);
      assert.deepEqual(await sink.commit([{ gatewayId: 'gw-a', records: range(3, 4) }]), [{ inserted: 2, duplicates: 0 }]);
    });

    it('sink - what was committed survives a reopen, and resends are still recognised', async () => {
      await sink.commit([{ gatewayId: 'gw-a', records: range(1, 3) }]);
      await sink.close();
      sink = await open(dir.path);
      assert.equal(await sink.lastSeq('gw-a'), 3);
      assert.deepEqual(await sink.commit([{ gatewayId: 'gw-a', records: range(2, 4) }]), [{ inserted: 1, duplicates: 2 }]);
      assert.equal((await sink.stats()).records, 4);
    });
  });
}
