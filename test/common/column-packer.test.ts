import assert from 'node:assert/strict';
import { once } from 'node:events';
import { MessageChannel } from 'node:worker_threads';
import { ColumnPacker, unpackColumns, type PackedColumns, type RowCodec } from '@fleetgate/common';

interface Row {
  name: string;
  n: number;
  a: Uint8Array;
  b: Uint8Array;
}

/** Two byte fields per row: the packer keeps no layout of its own, the codec's order is the layout. */
const codec: RowCodec<Row> = {
  write: (row, to) => {
    to.string(row.name);
    to.bytes(row.a);
    to.number(row.n);
    to.bytes(row.b);
  },
  read: (from) => ({ name: from.string(), a: from.bytes(), n: from.number(), b: from.bytes() }),
};

const row = (i: number): Row => ({
  name: `row-${i}`,
  n: i * 1.5,
  a: Buffer.alloc(i, i),
  b: Buffer.from(`b${i}`),
});

describe('column packer', function () {
  it('column packer - rows cross a MessageChannel by column, their bytes in one transferred buffer', async () => {
    const packer = new ColumnPacker(codec, 4);
    const rows = Array.from({ length: 20 }, (_, i) => row(i));
    for (const r of rows) packer.add(r);
    assert.equal(packer.count, 20);
    const packed = packer.take();
    assert.equal(packer.count, 0, 'take starts afresh');
    const { port1, port2 } = new MessageChannel();
    port1.postMessage(packed, [packed.payloads]);
    assert.equal(packed.payloads.byteLength, 0, 'the buffer moved');
    const [received] = (await once(port2, 'message')) as [PackedColumns];
    port1.close();
    const unpacked = unpackColumns(codec, received);
    assert.deepEqual(
      unpacked.map((r) => ({ ...r, a: Buffer.from(r.a), b: Buffer.from(r.b) })),
      rows.map((r) => ({ ...r, a: Buffer.from(r.a), b: Buffer.from(r.b) })),
    );
    assert.ok(
      unpacked.every((r) => r.a.buffer === received.payloads),
      'views into the transferred buffer, not copies',
    );
  });

  it('column packer - an exact capacity of 0 bytes, and nothing added, both pack', () => {
    const packer = new ColumnPacker(codec, 0);
    assert.deepEqual(unpackColumns(codec, packer.take()), []);
    packer.add({ name: '', n: 0, a: new Uint8Array(0), b: new Uint8Array(0) });
    packer.add(row(3));
    assert.deepEqual(
      unpackColumns(codec, packer.take()).map((r) => [r.name, r.a.length, r.b.toString()]),
      [
        ['', 0, ''],
        ['row-3', 3, 'b3'],
      ],
    );
  });
});
