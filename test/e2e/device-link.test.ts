/** The device link's refusals, with a raw gRPC client against a real gateway that requires device tokens. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { credentials, Metadata, status, type StatusObject } from '@grpc/grpc-js';
import { DeviceLinkClient, type DeviceFrame, type DeviceWelcome, type GatewayFrame } from '@fleetgate/protos';
import { GATEWAY_AUDIENCE } from '@fleetgate/common';
import { makeFleetKeys, type FleetKeys } from '../support/fleet-keys.ts';
import { startInProcess, type InProcessStack } from '../support/in-process.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { waitUntil } from '../support/test-device.ts';

/** Opens a device stream, sends `frames`, resolves with what came back and how the stream ended. */
async function exchange(
  port: number,
  token: string | undefined,
  frames: DeviceFrame[],
): Promise<{ received: GatewayFrame[]; ended: StatusObject }> {
  const client = new DeviceLinkClient(`127.0.0.1:${port}`, credentials.createInsecure());
  const metadata = new Metadata();
  if (token) metadata.set('authorization', `Bearer ${token}`);
  const call = client.connect(metadata);
  const received: GatewayFrame[] = [];
  call.on('data', (frame: GatewayFrame) => {
    received.push(frame);
    // After Welcome, send the rest.
    if (frame.frame?.$case === 'welcome') for (const f of frames.slice(1)) call.write(f);
    if (frame.frame?.$case === 'ack') call.end();
  });
  call.on('error', () => {});
  const ended = new Promise<StatusObject>((resolve) => call.on('status', resolve));
  call.write(frames[0]!);
  const timer = setTimeout(() => call.end(), 3000);
  const result = { received, ended: await ended };
  clearTimeout(timer);
  client.close();
  return result;
}

/**
 * A device written from device.proto alone, on the generated client (not the SDK, which never resends a durable
 * seq): opens a stream, sends what a test says, waits for what comes back.
 */
class RawDevice {
  readonly received: GatewayFrame[] = [];
  readonly ended: Promise<StatusObject>;
  private readonly client: DeviceLinkClient;
  private readonly call: ReturnType<DeviceLinkClient['connect']>;
  private waiters: Array<() => void> = [];

  constructor(port: number, token: string, epoch: string) {
    this.client = new DeviceLinkClient(`127.0.0.1:${port}`, credentials.createInsecure());
    const metadata = new Metadata();
    metadata.set('authorization', `Bearer ${token}`);
    this.call = this.client.connect(metadata);
    this.call.on('data', (frame: GatewayFrame) => {
      this.received.push(frame);
      for (const wake of this.waiters.splice(0)) wake();
    });
    this.call.on('error', () => {});
    this.ended = new Promise((resolve) => this.call.on('status', resolve));
    this.call.write({ frame: { $case: 'hello', value: { epoch, deviceId: '', sdkVersion: 'raw' } } });
  }

  async welcome(): Promise<DeviceWelcome> {
    const frame = await this.next((f) => f.frame?.$case === 'welcome');
    return (frame.frame as { value: DeviceWelcome }).value;
  }

  /** Messages with these seqs, in one Telemetry frame. */
  send(seqs: number[]): void {
    const messages = seqs.map((seq) => ({ seq, stream: '', timeMs: 0, payload: Buffer.from(`m${seq}`), contentType: '' }));
    this.call.write({ frame: { $case: 'telemetry', value: { messages } } });
  }

  /** Waits for an Ack through at least `seq`. */
  async ackThrough(seq: number): Promise<number> {
    const frame = await this.next((f) => f.frame?.$case === 'ack' && f.frame.value.throughSeq >= seq);
    return (frame.frame as { value: { throughSeq: number } }).value.throughSeq;
  }

  get acks(): number[] {
    return this.received.flatMap((f) => (f.frame?.$case === 'ack' ? [f.frame.value.throughSeq] : []));
  }

  close(): void {
    this.call.end();
    this.client.close();
  }

  private async next(match: (frame: GatewayFrame) => boolean): Promise<GatewayFrame> {
    for (;;) {
      const found = this.received.find(match);
      if (found) return found;
      await Promise.race([
        new Promise<void>((resolve) => this.waiters.push(resolve)),
        this.ended.then((s) => Promise.reject(new Error(`stream ended: ${s.details}`))),
      ]);
    }
  }
}

const seqRange = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

const hello = (deviceId = ''): DeviceFrame => ({
  frame: { $case: 'hello', value: { epoch: 'e1', deviceId, sdkVersion: 'test' } },
});
const telemetry = (seq: number, bytes = 10): DeviceFrame => ({
  frame: {
    $case: 'telemetry',
    value: { messages: [{ seq, stream: '', timeMs: 0, payload: Buffer.alloc(bytes), contentType: '' }] },
  },
});

describe('device link refusals', function () {
  this.timeout(30_000);
  const dir = useTempDir();
  let keys: FleetKeys;
  let stack: InProcessStack;

  beforeEach(async () => {
    keys = await makeFleetKeys(join(dir.path, 'keys'));
    stack = await startInProcess(dir.path, {
      allowAnonymous: false,
      deviceKey: { keyFile: keys.publicKeyFile, field: '--device-key' },
      maxPayloadBytes: 100,
    });
  });
  afterEach(() => stack.close());
  const port = () => stack.gateway.deviceGrpcAddress!.port;

  it('device link - no token, a bad token, or another audience: UNAUTHENTICATED or PERMISSION_DENIED, with the reason', async () => {
    const other = await makeFleetKeys(join(dir.path, 'other'));
    const cases: Array<[string | undefined, status, RegExp]> = [
      [undefined, status.UNAUTHENTICATED, /no token/],
      ['garbage', status.UNAUTHENTICATED, /not a usable token/],
      [await other.device('d1'), status.UNAUTHENTICATED, /signature/],
      [await keys.device('d1', { audience: GATEWAY_AUDIENCE }), status.PERMISSION_DENIED, /not meant for this service/],
    ];
    for (const [token, code, message] of cases) {
      const { ended, received } = await exchange(port(), token, [hello()]);
      assert.equal(status[ended.code], status[code], ended.details);
      assert.match(ended.details, message);
      assert.equal(received.length, 0, 'no Welcome');
    }
    const { refusals } = (await stack.gateway.stats()).deviceLink!;
    assert.deepEqual(
      [refusals['token-missing'], refusals['token-malformed'], refusals['token-bad-signature'], refusals['token-wrong-audience']],
      [1, 1, 1, 1],
    );
  });

  it("device link - a device claiming another device's id is refused (PERMISSION_DENIED); its token's id is the one used", async () => {
    const token = await keys.device('d1');
    const spoof = await exchange(port(), token, [hello('d2')]);
    assert.equal(spoof.ended.code, status.PERMISSION_DENIED);
    assert.match(spoof.ended.details, /client id "d2" is not the token's subject "d1"/);
    const honest = await exchange(port(), token, [hello(), telemetry(1)]);
    const welcome = honest.received[0]?.frame;
    assert.equal(welcome?.$case === 'welcome' && welcome.value.deviceId, 'd1');
  });

  it('device link - an oversize payload or a seq that does not increase ends the stream with INVALID_ARGUMENT; what came before is kept', async () => {
    const token = await keys.device('d1');
    const big = await exchange(port(), token, [hello(), telemetry(1), telemetry(2, 101)]);
    assert.equal(big.ended.code, status.INVALID_ARGUMENT);
    assert.match(big.ended.details, /seq 2: a payload of 101 bytes, over the limit of 100/);
    const backwards = await exchange(port(), token, [hello(), telemetry(5), telemetry(5)]);
    assert.equal(backwards.ended.code, status.INVALID_ARGUMENT);
    assert.match(backwards.ended.details, /seq 5 after 5: expected 6/);
    assert.equal((await stack.gateway.stats()).deviceLink!.refusals['payload-too-large'], 1);
    // Seq 1 of the first stream and seq 5 of the second are journaled (their commit may end after the refusal).
    await waitUntil('both commits', async () => (await stack.gateway.stats()).journal.lastSeq === 2);
  });

  it('device link - Telemetry before Hello is refused (FAILED_PRECONDITION)', async () => {
    const { ended } = await exchange(port(), await keys.device('d1'), [telemetry(1)]);
    assert.equal(ended.code, status.FAILED_PRECONDITION);
  });

  it('device link - a second Hello, even one sent before the Welcome, is refused (INVALID_ARGUMENT); nothing stays connected', async () => {
    const client = new DeviceLinkClient(`127.0.0.1:${port()}`, credentials.createInsecure());
    const metadata = new Metadata();
    metadata.set('authorization', `Bearer ${await keys.device('d1')}`);
    const call = client.connect(metadata);
    call.on('data', () => {});
    call.on('error', () => {});
    const ended = new Promise<StatusObject>((resolve) => call.on('status', resolve));
    call.write(hello());
    call.write(hello());
    const { code, details } = await ended;
    client.close();
    assert.equal(status[code], 'INVALID_ARGUMENT', details);
    assert.match(details, /Hello sent twice/);
    const link = (await stack.gateway.stats()).deviceLink!;
    assert.equal(link.refusals.protocol, 1);
    assert.equal(link.disconnects['taken-over'], 0, 'not a takeover of itself');
    await waitUntil('no device left connected', async () => (await stack.gateway.stats()).deviceLink!.devicesConnected === 0);
  });

  it('device link - seqs at or below the last durable one, resent on a new stream, are acked again and not stored; new seqs follow', async () => {
    const token = await keys.device('d1');
    const first = new RawDevice(port(), token, 'epoch-1');
    assert.equal((await first.welcome()).lastDurableSeq, 0);
    first.send(seqRange(1, 1000));
    await first.ackThrough(1000);
    first.close();
    await first.ended;

    // A device whose outbox has not caught up with the Welcome yet resends 991..1000, then goes on.
    const second = new RawDevice(port(), token, 'epoch-1');
    const welcome = await second.welcome();
    assert.equal(welcome.lastDurableSeq, 1000);
    assert.equal(
      welcome.limits?.maxUnackedMessages,
      1000,
      'the window the gateway reads ahead of its acks (--max-unacked-per-connection)',
    );
    second.send(seqRange(991, 1000));
    assert.equal(await second.ackThrough(1000), 1000);
    second.send([1001, 1002]);
    assert.equal(await second.ackThrough(1002), 1002);
    second.close();
    const ended = await second.ended;
    assert.equal(ended.code, status.OK, ended.details);

    const stats = await stack.gateway.stats();
    assert.equal(stats.deviceLink!.resent, 10);
    assert.equal(stats.deviceLink!.messages, 1002, 'the resends were not taken as messages');
    assert.equal(stats.journal.lastSeq, 1002, 'each seq journaled once');
    await waitUntil('every record at the cloud', () => stack.cloud.stats().then((c) => c.records === 1002));
  });

  it('device link - after a new seq on a stream, a skipped or repeated seq ends it with INVALID_ARGUMENT naming the seq expected', async () => {
    const token = await keys.device('d1');
    const skip = new RawDevice(port(), token, 'epoch-2');
    await skip.welcome();
    skip.send([1, 2, 4]);
    const skipped = await skip.ended;
    assert.equal(skipped.code, status.INVALID_ARGUMENT);
    assert.match(skipped.details, /seq 4 after 2: expected 3; seqs are never skipped/);
    skip.close();
    // 1 and 2 were taken before the refusal; their commit may end after it.
    await waitUntil('1 and 2 committed', async () => (await stack.gateway.stats()).journal.lastSeq === 2);

    const back = new RawDevice(port(), token, 'epoch-2');
    assert.equal((await back.welcome()).lastDurableSeq, 2);
    back.send([1, 3, 2]); // a resend of 1 is fine before 3; after 3 a resend of 2 is not
    const backwards = await back.ended;
    assert.equal(backwards.code, status.INVALID_ARGUMENT);
    assert.match(backwards.details, /seq 2 after 3: expected 4/);
    back.close();
    const { refusals } = (await stack.gateway.stats()).deviceLink!;
    assert.deepEqual([refusals['seq-skipped'], refusals['seq-not-increasing']], [1, 1]);
  });

  it('device link - the first new seq on a stream may lie above the durable one + 1 (sent to another gateway before); each next one is +1', async () => {
    const device = new RawDevice(port(), await keys.device('d1'), 'epoch-3');
    assert.equal((await device.welcome()).lastDurableSeq, 0);
    device.send([501, 502]);
    assert.equal(await device.ackThrough(502), 502);
    device.close();
    assert.equal((await device.ended).code, status.OK);
    assert.equal((await stack.gateway.stats()).journal.lastSeq, 2);
  });
});

describe('device link only (--mqtt off)', function () {
  this.timeout(30_000);
  const dir = useTempDir();
  let stack: InProcessStack | undefined;
  afterEach(() => stack?.close());

  it('device link - a gateway with no MQTT listener at all serves the device link alone, and is ready', async () => {
    const keys = await makeFleetKeys(join(dir.path, 'keys'));
    stack = await startInProcess(dir.path, {
      mqtt: null,
      allowAnonymous: false,
      deviceKey: { keyFile: keys.publicKeyFile, field: '--device-key' },
    });
    assert.deepEqual(stack.gateway.mqttAddresses, {});
    const device = new RawDevice(stack.gateway.deviceGrpcAddress!.port, await keys.device('d1'), 'epoch-1');
    await device.welcome();
    device.send([1, 2, 3]);
    assert.equal(await device.ackThrough(3), 3);
    device.close();
    const readiness = (await (await fetch(`http://127.0.0.1:${stack.gateway.adminAddress!.port}/readyz`)).json()) as {
      checks: { listeners: { ok: boolean; reason: string } };
    };
    assert.equal(readiness.checks.listeners.ok, true);
    assert.match(readiness.checks.listeners.reason, /^grpc 127\.0\.0\.1:\d+$/);
    assert.deepEqual((await stack.gateway.stats()).ingress.listeners, {});
    await waitUntil('the records at the cloud', () => stack!.cloud.stats().then((c) => c.records === 3));
  });
});
