import assert from 'node:assert/strict';
import type { ExportedRecord } from '@fleetgate/cloud-stub';
import { verifyDelivery } from './delivery.ts';

const rec = (seq: number, deviceId: string, n: number, gatewayId = 'gw'): ExportedRecord => ({
  gatewayId,
  seq,
  deviceId,
  stream: '',
  payload: Buffer.from(`${deviceId}:${n}`).toString('base64'),
  contentType: '',
  deviceSeq: 0,
  deviceTime: 0,
  gatewayTime: 0,
  receivedTime: 0,
});

describe('delivery verifier', function () {
  it('delivery verifier - a clean delivery is clean', () => {
    const records = [rec(1, 'a', 1), rec(2, 'b', 1), rec(3, 'a', 2)];
    assert.deepEqual(
      verifyDelivery(records, [
        { deviceId: 'a', acked: new Set([1, 2]) },
        { deviceId: 'b', acked: new Set([1]) },
      ]),
      {
        records: 3,
        lost: [],
        duplicates: [],
        outOfOrder: [],
        duplicateSeqs: [],
      },
    );
  });

  it('delivery verifier - finds a loss, a duplicate, a reordering and a seq stored twice', () => {
    const records = [rec(1, 'a', 1), rec(2, 'a', 3), rec(3, 'a', 2), rec(4, 'b', 1), rec(5, 'b', 1), rec(5, 'b', 1)];
    const report = verifyDelivery(records, [
      { deviceId: 'a', acked: new Set([1, 2, 3, 4]) },
      { deviceId: 'b', acked: new Set([1]) },
    ]);
    assert.deepEqual(report.lost, ['a:4']);
    assert.deepEqual(report.outOfOrder, ['a']);
    assert.deepEqual(report.duplicates, ['b:1 x2', 'b:1 x3']);
    assert.deepEqual(report.duplicateSeqs, ['gw/5']);
  });

  it('delivery verifier - a repeat is allowed only for messages in flight at a crash, and only once', () => {
    const records = [rec(1, 'a', 1), rec(2, 'a', 2), rec(3, 'a', 1), rec(4, 'a', 2), rec(5, 'a', 2)];
    const report = verifyDelivery(records, [{ deviceId: 'a', acked: new Set([1, 2]), mayRepeat: new Set([1, 2]) }]);
    assert.deepEqual(report.duplicates, ['a:2 x3']);
    assert.deepEqual(report.outOfOrder, [], 'a resend arriving later is not a reordering');
  });

  it('delivery verifier - a message in flight at several drops may arrive once more per drop, no more', () => {
    const records = [
      rec(1, 'a', 1),
      rec(2, 'a', 1),
      rec(3, 'a', 1),
      rec(4, 'a', 2),
      rec(5, 'a', 2),
      rec(6, 'a', 2),
      rec(7, 'a', 2),
    ];
    const report = verifyDelivery(records, [
      {
        deviceId: 'a',
        acked: new Set([1, 2]),
        maxCopies: new Map([
          [1, 3],
          [2, 3],
        ]),
      },
    ]);
    assert.deepEqual(report.duplicates, ['a:2 x4']);
  });
});
