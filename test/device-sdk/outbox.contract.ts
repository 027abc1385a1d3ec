import assert from 'node:assert/strict';
import { OutboxFullError, type Outbox, type OutboxMessage } from '@fleetgate/device-sdk';
import { useTempDir } from '../support/temp-dir.ts';

export const message = (n: number, bytes = 10): OutboxMessage => ({
  stream: n % 2 ? 'a' : '',
  contentType: '',
  timeMs: 1000 + n,
  payload: Buffer.alloc(bytes, n),
});

/** What every outbox must do. `open(dir, limits)` opens the outbox kept in `dir`. */
export function outboxContract(
  name: string,
  open: (dir: string, limits: { maxMessages: number; maxBytes: number }) => Outbox,
): void {
  describe(`outbox contract - ${name}`, function () {
    const dir = useTempDir();
    let outbox: Outbox;
    afterEach(() => outbox.close());

    it('outbox - numbers messages 1, 2, 3 within an epoch and returns them, flushed, in order', () => {
      outbox = open(dir.path, { maxMessages: 100, maxBytes: 1 << 20 });
      assert.match(outbox.epoch, /^[A-Za-z0-9-]{1,64}$/);
      assert.deepEqual(
        [1, 2, 3].map((n) => outbox.add(message(n)).seq),
        [1, 2, 3],
      );
      outbox.flush();
      assert.deepEqual(
        outbox.after(0, 10).map((e) => [e.seq, e.timeMs, e.stream, Buffer.from(e.payload).equals(message(e.seq).payload)]),
        [
          [1, 1001, 'a', true],
          [2, 1002, '', true],
          [3, 1003, 'a', true],
        ],
      );
      assert.deepEqual(
        outbox.after(1, 1).map((e) => e.seq),
        [2],
      );
      assert.equal(outbox.lastSeq, 3);
    });

    it('outbox - acked messages leave; seqs go on', () => {
      outbox = open(dir.path, { maxMessages: 100, maxBytes: 1 << 20 });
      for (let n = 1; n <= 5; n++) outbox.add(message(n));
      outbox.flush();
      outbox.ackThrough(3);
      assert.equal(outbox.size, 2);
      assert.deepEqual(
        outbox.after(0, 10).map((e) => e.seq),
        [4, 5],
      );
      assert.equal(outbox.add(message(6)).seq, 6);
    });

    it('outbox - at its bound it refuses, by count and by bytes, and takes again once acked', () => {
      outbox = open(dir.path, { maxMessages: 3, maxBytes: 25 });
      outbox.add(message(1));
      outbox.add(message(2));
      assert.throws(() => outbox.add(message(3, 10)), OutboxFullError, 'bytes');
      outbox.add(message(3, 5));
      assert.throws(() => outbox.add(message(4, 1)), OutboxFullError, 'count');
      outbox.flush();
      outbox.ackThrough(1);
      assert.equal(outbox.add(message(4, 1)).seq, 4);
    });
  });
}
