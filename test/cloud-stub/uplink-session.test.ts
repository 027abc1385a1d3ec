/** The cloud-stub's side of Uplink.Connect, driven by a raw grpc-js client: the protocol and its refusals. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { CloudStub, readSqliteGaps } from '@fleetgate/cloud-stub';
import { RawUplink, range, status, telemetry } from '../support/uplink-client.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { waitUntil } from '../support/test-device.ts';

describe('cloud-stub uplink', function () {
  this.timeout(15_000);
  const dir = useTempDir();
  let stub: CloudStub;
  let streams: RawUplink[] = [];

  beforeEach(async () => {
    stub = await CloudStub.start({
      listen: { host: '127.0.0.1', port: 0 },
      dataDir: join(dir.path, 'cloud'),
      durability: 'process',
    });
  });
  afterEach(async () => {
    for (const s of streams) s.close();
    streams = [];
    await stub.close();
  });
  const open = () => {
    const stream = RawUplink.connect(stub.address.port);
    streams.push(stream);
    return stream;
  };

  const ack = (fromSeq: number, throughSeq: number, rejected: Array<{ seq: number; reason: string }> = []) => ({
    fromSeq,
    throughSeq,
    rejected,
  });

  it('cloud-stub - Hello gets Welcome with the first credit; each batch is acked by its range once committed, and its credit given back', async () => {
    const s = open();
    s.hello('gw-1');
    const welcome = await s.frame(1);
    assert.equal(welcome.frame?.$case, 'welcome');
    assert.equal(welcome.frame?.$case === 'welcome' && welcome.frame.value.lastCommittedSeq, 0);
    assert.equal(s.credit, 16);
    s.batch(range(1, 3));
    s.batch(range(4, 5));
    assert.deepEqual(await s.ack(1), ack(1, 3));
    assert.deepEqual(await s.ack(2), ack(4, 5));
    assert.deepEqual((await s.frame(3)).frame, { $case: 'credit', value: { batches: 1 } }, 'the credit follows its ack');
    await waitUntil('both credits back', () => s.credit === 18);
    const stats = await stub.stats();
    assert.equal(stats.records, 5);
    assert.equal(stats.sessions, 1);
  });

  it('cloud-stub - a resend after reconnecting is acked and not stored twice; Welcome says what is held', async () => {
    const first = open();
    first.hello('gw-1');
    first.batch(range(1, 3));
    await first.ack(1);
    first.close();
    const second = open();
    second.hello('gw-1', 1);
    const welcome = await second.frame(1);
    assert.equal(welcome.frame?.$case === 'welcome' && welcome.frame.value.lastCommittedSeq, 3);
    second.batch(range(2, 4));
    assert.deepEqual(await second.ack(1), ack(2, 4));
    const stats = await stub.stats();
    assert.deepEqual([stats.records, stats.duplicates], [4, 2]);
  });

  it('cloud-stub - batches may come in any seq order across lanes (live before backlog); each device reads back by seq', async () => {
    const s = open();
    s.hello('gw-1');
    s.batch(range(101, 102));
    s.batch(range(1, 50));
    assert.deepEqual(await s.ack(2), ack(1, 50));
    assert.equal((await stub.stats()).records, 52);
  });

  it('cloud-stub - fault injection: held acks (and their credit) wait while the records are committed', async () => {
    const s = open();
    s.hello('gw-1');
    await s.frame(1);
    stub.faults.hold();
    s.batch(range(1, 2));
    await waitUntil('the batch committed', async () => (await stub.stats()).records === 2);
    assert.equal(s.frames.length, 1, 'no ack, no credit while held');
    stub.faults.release();
    assert.deepEqual(await s.ack(1), ack(1, 2));
    assert.equal((await s.frame(3)).frame?.$case, 'credit');
  });

  it('cloud-stub - Welcome says it answers heartbeats; each Heartbeat comes back at once with its id, even while acks are held', async () => {
    const s = open();
    s.hello('gw-1');
    const welcome = await s.frame(1);
    assert.equal(welcome.frame?.$case === 'welcome' && welcome.frame.value.answersHeartbeats, true);
    stub.faults.hold();
    s.batch(range(1, 2));
    await waitUntil('the batch committed', async () => (await stub.stats()).records === 2);
    s.heartbeat(7, 1234);
    assert.deepEqual(
      (await s.frame(2)).frame,
      { $case: 'heartbeat', value: { id: 7, timeMs: 1234 } },
      'answered, ahead of the held ack',
    );
    stub.faults.release();
    assert.deepEqual(await s.ack(1), ack(1, 2));
  });

  it('cloud-stub - records with invalid fields are rejected in the ack, the rest of the batch is committed, the stream goes on', async () => {
    const s = open();
    s.hello('gw-1');
    s.batch([telemetry(1), telemetry(2, ''), { ...telemetry(3), stream: 'a\nb' }, telemetry(4, 'dev\u0006x'), telemetry(5)]);
    const { rejected, ...acked } = await s.ack(1);
    assert.deepEqual(acked, { fromSeq: 1, throughSeq: 5 });
    assert.deepEqual(
      rejected.map((r) => r.seq),
      [2, 3, 4],
    );
    assert.match(rejected[0]!.reason, /deviceId "" is not/);
    assert.match(rejected[1]!.reason, /stream/);
    assert.match(rejected[2]!.reason, /deviceId/);
    s.batch(range(6, 6));
    assert.deepEqual(await s.ack(2), ack(6, 6));
    const stats = await stub.stats();
    assert.equal(stats.records, 3);
  });

  it('cloud-stub - fault injection: payloads containing rejectPayloads are rejected as invalid', async () => {
    stub.faults.rejectPayloads('p2');
    const s = open();
    s.hello('gw-1');
    s.batch(range(1, 3));
    assert.deepEqual(await s.ack(1), ack(1, 3, [{ seq: 2, reason: 'payload refused by fault injection (rejectPayloads)' }]));
    assert.equal((await stub.stats()).records, 2);
  });

  it('cloud-stub - a Gap is recorded, acked by its range, and shown in stats and the gap export', async () => {
    const s = open();
    s.hello('gw-1');
    s.gap({ fromSeq: 3, toSeq: 9, reason: 'journal-full', count: 6, timeMs: 1234 });
    assert.deepEqual(await s.ack(1), ack(3, 9));
    s.gap({ fromSeq: 3, toSeq: 9, reason: 'journal-full', count: 6, timeMs: 1234 });
    assert.deepEqual(await s.ack(2), ack(3, 9), 'a gap sent again (after a reconnect) is acked again');
    const stats = await stub.stats();
    assert.deepEqual([stats.gaps, stats.recordsLostInGaps], [1, 6], 'and recorded once');
    const [gap, ...more] = readSqliteGaps(join(dir.path, 'cloud'));
    assert.deepEqual(more, []);
    assert.deepEqual(
      { ...gap, receivedTime: 0 },
      { gatewayId: 'gw-1', fromSeq: 3, toSeq: 9, reason: 'journal-full', count: 6, time: 1234, receivedTime: 0 },
    );
  });

  it('cloud-stub - a batch sent without credit ends the stream with RESOURCE_EXHAUSTED', async () => {
    await stub.close();
    stub = await CloudStub.start({
      listen: { host: '127.0.0.1', port: 0 },
      dataDir: join(dir.path, 'cloud'),
      durability: 'process',
      limits: { maxBatchesInFlight: 2 },
    });
    const s = open();
    s.hello('gw-1');
    await s.frame(1);
    assert.equal(s.credit, 2);
    stub.faults.hold();
    for (let seq = 1; seq <= 3; seq++) s.batch(range(seq, seq));
    const ended = await s.ended;
    assert.equal(ended.code, status.RESOURCE_EXHAUSTED, ended.details);
    assert.match(ended.details, /without credit/);
  });

  const refusals: Array<[string, (s: RawUplink) => void, status, RegExp]> = [
    ['a batch before Hello', (s) => s.batch(range(1, 1)), status.FAILED_PRECONDITION, /first frame must be Hello/],
    [
      'a gap before Hello',
      (s) => s.gap({ fromSeq: 1, toSeq: 1, reason: 'journal-full', count: 1, timeMs: 0 }),
      status.FAILED_PRECONDITION,
      /first frame must be Hello/,
    ],
    ['Hello twice', (s) => (s.hello('gw-1'), s.hello('gw-1')), status.INVALID_ARGUMENT, /Hello sent twice/],
    ['a gateway id with a slash', (s) => s.hello('gw/1'), status.INVALID_ARGUMENT, /gatewayId "gw\/1"/],
    ['an empty gateway id', (s) => s.hello(''), status.INVALID_ARGUMENT, /gatewayId ""/],
    ['an empty batch', (s) => (s.hello('gw-1'), s.batch([])), status.INVALID_ARGUMENT, /no records/],
    [
      'seqs going backwards in a batch',
      (s) => (s.hello('gw-1'), s.batch([telemetry(5), telemetry(4)])),
      status.INVALID_ARGUMENT,
      /seq 4 after 5/,
    ],
    ['seq 0', (s) => (s.hello('gw-1'), s.batch([telemetry(0)])), status.INVALID_ARGUMENT, /seq 0 after 0/],
    [
      'a gap running backwards',
      (s) => (s.hello('gw-1'), s.gap({ fromSeq: 5, toSeq: 4, reason: 'journal-full', count: 0, timeMs: 0 })),
      status.INVALID_ARGUMENT,
      /Gap 5\.\.4/,
    ],
    [
      'a gap counting more than its range',
      (s) => (s.hello('gw-1'), s.gap({ fromSeq: 1, toSeq: 2, reason: 'too-old', count: 3, timeMs: 0 })),
      status.INVALID_ARGUMENT,
      /count 3/,
    ],
    [
      'a gap without a reason',
      (s) => (s.hello('gw-1'), s.gap({ fromSeq: 1, toSeq: 2, reason: '', count: 1, timeMs: 0 })),
      status.INVALID_ARGUMENT,
      /reason/,
    ],
  ];
  for (const [what, send, code, message] of refusals) {
    it(`cloud-stub - ${what} ends the stream with ${status[code]} and a message`, async () => {
      const s = open();
      send(s);
      const ended = await s.ended;
      assert.equal(ended.code, code, `${status[ended.code]}: ${ended.details}`);
      assert.match(ended.details, message);
      const stats = await stub.stats();
      assert.deepEqual([stats.records, stats.gaps], [0, 0]);
    });
  }

  it('cloud-stub - a second stream from the same gateway supersedes the first (ABORTED)', async () => {
    const first = open();
    first.hello('gw-1');
    await first.frame(1);
    const second = open();
    second.hello('gw-1');
    await second.frame(1);
    const ended = await first.ended;
    assert.equal(ended.code, status.ABORTED);
    assert.match(ended.details, /superseded/);
    second.batch(range(1, 1));
    assert.deepEqual(await second.ack(1), ack(1, 1));
  });
});
