/** The sink thread's batches on the shared column packer: what crosses the thread boundary comes out whole. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { MessageChannel } from 'node:worker_threads';
import { pack, unpack, type PackedBatches } from '../../cloud-stub/src/sink/threaded-sink.ts';
import type { SinkBatch } from '@fleetgate/cloud-stub';

const record = (seq: number, payload: Uint8Array) => ({
  seq,
  deviceId: `dev-${seq % 3}`,
  stream: seq % 2 ? 'vibration' : '',
  deviceSeq: seq * 10,
  deviceTimeMs: 1_700_000_000_000 + seq,
  gatewayTimeMs: 1_700_000_001_000 + seq,
  payload,
  contentType: seq % 2 ? 'application/json' : '',
});

describe('sink thread batches', function () {
  it('sink thread - batches of several gateways cross a MessageChannel by column, payloads in one transferred buffer', async () => {
    // Payloads as grpc-js decodes them: views into one larger message buffer.
    const message = Buffer.from('0123456789abcdefghij');
    const batches: SinkBatch[] = [
      { gatewayId: 'gw-1', records: [record(1, message.subarray(2, 5)), record(2, message.subarray(5, 5))] },
      { gatewayId: 'gw-2', records: [] },
      { gatewayId: 'gw-3', records: [record(7, message.subarray(10, 20))] },
    ];
    const packed = pack(batches);
    assert.equal(packed.records.payloads.byteLength, 13, 'exactly the payload bytes, not the messages they are views of');
    const { port1, port2 } = new MessageChannel();
    port1.postMessage(packed, [packed.records.payloads]);
    const [received] = (await once(port2, 'message')) as [PackedBatches];
    port1.close();
    const plain = (b: readonly SinkBatch[]) =>
      b.map(({ gatewayId, records }) => ({
        gatewayId,
        records: records.map((r) => ({ ...r, payload: Buffer.from(r.payload).toString() })),
      }));
    assert.deepEqual(plain(unpack(received)), plain(batches));
  });
});
