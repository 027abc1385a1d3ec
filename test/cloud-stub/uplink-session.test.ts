/** The cloud-stub's side of Uplink.Connect, driven by a raw grpc-js client: the protocol and its refusals. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { CloudStub } from '@fleetgate/cloud-stub';
import { RawUplink, range, status, telemetry } from '../support/uplink-client.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { waitUntil } from '../support/test-device.ts';

describe('cloud-stub uplink', function () {
  this.timeout(15_000);
  const dir = useTempDir();
  let stub: CloudStub;
  let streams: RawUplink[] = [];

  beforeEach(async () => {
    stub = await CloudStub.start({ listen: { host: '127.0.0.1', port: 0 }, dataDir: join(dir.path, 'cloud'), durability: 'process' });
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

  it('cloud-stub - Hello gets Welcome; each batch is acked through its last seq once committed', async () => {
    const s = open();
    s.hello('gw-1');
    const welcome = await s.frame(1);
    assert.equal(welcome.frame?.$case, 'welcome');
    assert.equal(welcome.frame?.$case === 'welcome' && welcome.frame.value.lastCommittedSeq, 0);
    s.batch(range(1, 3));
    s.batch(range(4, 5));
    assert.deepEqual((await s.frame(2)).frame, { $case: 'ack', value: { throughSeq: 3 } });
    assert.deepEqual((await s.frame(3)).frame, { $case: 'ack', value: { throughSeq: 5 } });
    const stats = await stub.stats();
    assert.equal(stats.records, 5);
    assert.equal(stats.sessions, 1);
  });

  it('cloud-stub - a resend after reconnecting is acked and not stored twice; Welcome says what is held', async () => {
    const first = open();
    first.hello('gw-1');
    first.batch(range(1, 3));
    await first.frame(2);
    first.close();
    const second = open();
    second.hello('gw-1', 1);
    const welcome = await second.frame(1);
    assert.equal(welcome.frame?.$case === 'welcome' && welcome.frame.value.lastCommittedSeq, 3);
    second.batch(range(2, 4));
    assert.deepEqual((await second.frame(2)).frame, { $case: 'ack', value: { throughSeq: 4 } });
    const stats = await stub.stats();
    assert.deepEqual([stats.records, stats.duplicates], [4, 2]);
  });

  it('cloud-stub - acks wait for the ack gate (fault injection) but the records are committed', async () => {
    const s = open();
    s.hello('gw-1');
    await s.frame(1);
    stub.acks.hold();
    s.batch(range(1, 2));
    await waitUntil('the batch committed', async () => (await stub.stats()).records === 2);
    assert.equal(s.frames.length, 1, 'no ack while held');
    stub.acks.release();
    assert.deepEqual((await s.frame(2)).frame, { $case: 'ack', value: { throughSeq: 2 } });
  });

  const refusals: Array<[string, (s: RawUplink) => void, status, RegExp]> = [
    ['a batch before Hello', (s) => s.batch(range(1, 1)), status.FAILED_PRECONDITION, /first frame must be Hello/],
    ['Hello twice', (s) => (s.hello('gw-1'), s.hello('gw-1')), status.INVALID_ARGUMENT, /Hello sent twice/],
    ['a gateway id with a slash', (s) => s.hello('gw/1'), status.INVALID_ARGUMENT, /gatewayId "gw\/1"/],
    ['an empty gateway id', (s) => s.hello(''), status.INVALID_ARGUMENT, /gatewayId ""/],
    ['an empty batch', (s) => (s.hello('gw-1'), s.batch([])), status.INVALID_ARGUMENT, /no records/],
    ['seqs going backwards', (s) => (s.hello('gw-1'), s.batch([telemetry(5), telemetry(4)])), status.INVALID_ARGUMENT, /seq 4 after 5/],
    ['a record without a device', (s) => (s.hello('gw-1'), s.batch([telemetry(1, '')])), status.INVALID_ARGUMENT, /record 1: deviceId "" is not/],
    ['a device id with control characters', (s) => (s.hello('gw-1'), s.batch([telemetry(1, 'dev\u0006x')])), status.INVALID_ARGUMENT, /record 1: deviceId/],
    ['a stream with control characters', (s) => (s.hello('gw-1'), s.batch([{ ...telemetry(1), stream: 'a\nb' }])), status.INVALID_ARGUMENT, /record 1: stream/],
  ];
  for (const [what, send, code, message] of refusals) {
    it(`cloud-stub - ${what} ends the stream with ${status[code]} and a message`, async () => {
      const s = open();
      send(s);
      const ended = await s.ended;
      assert.equal(ended.code, code, `${status[ended.code]}: ${ended.details}`);
      assert.match(ended.details, message);
      assert.equal((await stub.stats()).records, 0);
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
    assert.equal((await second.frame(2)).frame?.$case, 'ack');
  });
});
