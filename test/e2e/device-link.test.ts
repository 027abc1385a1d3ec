/** The device link's refusals, with a raw gRPC client against a real gateway that requires device tokens. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { credentials, Metadata, status, type StatusObject } from '@grpc/grpc-js';
import { DeviceLinkClient, type DeviceFrame, type GatewayFrame } from '@fleetgate/protos';
import { GATEWAY_AUDIENCE } from '@fleetgate/common';
import { makeFleetKeys, type FleetKeys } from '../support/fleet-keys.ts';
import { startInProcess, type InProcessStack } from '../support/in-process.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { waitUntil } from '../support/test-device.ts';

/** Opens a device stream, sends `frames`, resolves with what came back and how the stream ended. */
async function exchange(port: number, token: string | undefined, frames: DeviceFrame[]): Promise<{ received: GatewayFrame[]; ended: StatusObject }> {
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

const hello = (deviceId = ''): DeviceFrame => ({ frame: { $case: 'hello', value: { epoch: 'e1', deviceId, sdkVersion: 'test' } } });
const telemetry = (seq: number, bytes = 10): DeviceFrame => ({
  frame: { $case: 'telemetry', value: { messages: [{ seq, stream: '', timeMs: 0, payload: Buffer.alloc(bytes), contentType: '' }] } },
});

describe('device link refusals', function () {
  this.timeout(30_000);
  const dir = useTempDir();
  let keys: FleetKeys;
  let stack: InProcessStack;

  beforeEach(async () => {
    keys = await makeFleetKeys(join(dir.path, 'keys'));
    stack = await startInProcess(dir.path, { allowAnonymous: false, deviceKey: { keyFile: keys.publicKeyFile, field: '--device-key' }, maxPayloadBytes: 100 });
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
    assert.deepEqual([refusals['token-missing'], refusals['token-malformed'], refusals['token-bad-signature'], refusals['token-wrong-audience']], [1, 1, 1, 1]);
  });

  it('device link - a device claiming another device\'s id is refused (PERMISSION_DENIED); its token\'s id is the one used', async () => {
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
    assert.match(backwards.ended.details, /seq 5 after 5/);
    assert.equal((await stack.gateway.stats()).deviceLink!.refusals['payload-too-large'], 1);
    // Seq 1 of the first stream and seq 5 of the second are journaled (their commit may end after the refusal).
    await waitUntil('both commits', async () => (await stack.gateway.stats()).journal.lastSeq === 2);
  });

  it('device link - Telemetry before Hello is refused (FAILED_PRECONDITION)', async () => {
    const { ended } = await exchange(port(), await keys.device('d1'), [telemetry(1)]);
    assert.equal(ended.code, status.FAILED_PRECONDITION);
  });
});
