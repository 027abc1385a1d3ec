import assert from 'node:assert/strict';
import { MessageChannel } from 'node:worker_threads';
import { once } from 'node:events';
import { RecordPacker, unpackRecords, type PackedRecords } from '../../gateway/src/pipeline/packed-records.ts';
import { record } from './journal.contract.ts';

describe('packed records', function () {
  it('packed records - cross a thread boundary intact, payloads transferred rather than copied', async () => {
    const packer = new RecordPacker(16);
    const records = [
      record('device-a', 1, 0),
      record('device-b', 2, 40),
      { ...record('c', 3, 5), payload: Buffer.from('0123456789').subarray(3, 7) },
    ];
    for (const r of records) packer.add(r);
    assert.equal(packer.count, 3);
    const packed = packer.take();
    assert.equal(packer.count, 0, 'take starts afresh');
    const { port1, port2 } = new MessageChannel();
    port1.postMessage(packed, [packed.payloads]);
    assert.equal(packed.payloads.byteLength, 0, 'the buffer moved to the other side');
    const [received] = (await once(port2, 'message')) as [PackedRecords];
    port1.close();
    const unpacked = unpackRecords(received);
    assert.deepEqual(
      unpacked.map((r) => ({ ...r, payload: Buffer.from(r.payload) })),
      records.map((r) => ({ ...r, payload: Buffer.from(r.payload) })),
    );
  });

  it('packed records - a packer grows past its first capacity and never hands out a pooled buffer', () => {
    const packer = new RecordPacker(8);
    for (let i = 0; i < 50; i++) packer.add(record('d', i, 100));
    const packed = packer.take();
    assert.ok(packed.payloads.byteLength >= 5000);
    assert.notEqual(packed.payloads, Buffer.alloc(1).buffer, "not Node's shared pool");
    assert.equal(unpackRecords(packed).length, 50);
  });
});
