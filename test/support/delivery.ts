/**
 * What arrived at the cloud-stub, checked against what devices were told was safe: the verification every
 * end-to-end test ends with. Payloads are "<deviceId>:<n>" (see TestDevice).
 */
import type { ExportedRecord } from '@fleetgate/cloud-stub';
import { exportSqliteSink } from '@fleetgate/cloud-stub';

export interface DeviceExpectation {
  deviceId: string;
  /** Messages the device got a PUBACK for: each must have arrived. */
  acked: ReadonlySet<number>;
  /** Messages that may legitimately have arrived twice: the ones in flight when the gateway crashed. */
  mayRepeat?: ReadonlySet<number>;
  /** The most copies of a message that may arrive, where more than two may (several crashes in a row). */
  maxCopies?: ReadonlyMap<number, number>;
}

export interface DeliveryReport {
  records: number;
  /** Acked messages that never arrived. */
  lost: string[];
  /** Messages that arrived more than once and were not allowed to. */
  duplicates: string[];
  /** Devices whose messages arrived out of order (first arrivals by gateway seq). */
  outOfOrder: string[];
  /** (gatewayId, seq) keys held twice: the backend's dedupe failed. */
  duplicateSeqs: string[];
}

export function readCloud(cloudDataDir: string): ExportedRecord[] {
  return [...exportSqliteSink(cloudDataDir)];
}

export function verifyDelivery(records: readonly ExportedRecord[], devices: readonly DeviceExpectation[]): DeliveryReport {
  const report: DeliveryReport = { records: records.length, lost: [], duplicates: [], outOfOrder: [], duplicateSeqs: [] };
  const keys = new Set<string>();
  for (const r of records) {
    const key = `${r.gatewayId}/${r.seq}`;
    if (keys.has(key)) report.duplicateSeqs.push(key);
    keys.add(key);
  }
  // In gateway seq order (the journal's order), the message numbers each device sent.
  const bySeq = [...records].sort((a, b) => (a.gatewayId === b.gatewayId ? a.seq - b.seq : a.gatewayId < b.gatewayId ? -1 : 1));
  const arrivals = new Map<string, number[]>();
  for (const r of bySeq) {
    const [deviceId, n] = Buffer.from(r.payload, 'base64').toString().split(':');
    if (deviceId !== r.deviceId)
      throw new Error(`record ${r.gatewayId}/${r.seq} says device ${r.deviceId}, payload says ${deviceId}`);
    let list = arrivals.get(r.deviceId);
    if (!list) arrivals.set(r.deviceId, (list = []));
    list.push(Number(n));
  }
  for (const device of devices) {
    const list = arrivals.get(device.deviceId) ?? [];
    const seen = new Map<number, number>();
    let last = 0;
    let ordered = true;
    for (const n of list) {
      const count = (seen.get(n) ?? 0) + 1;
      seen.set(n, count);
      if (count === 1) {
        if (n < last) ordered = false;
        last = n;
      } else if (count > Math.max(device.maxCopies?.get(n) ?? 1, device.mayRepeat?.has(n) ? 2 : 1)) {
        report.duplicates.push(`${device.deviceId}:${n} x${count}`);
      }
    }
    if (!ordered) report.outOfOrder.push(device.deviceId);
    for (const n of device.acked) if (!seen.has(n)) report.lost.push(`${device.deviceId}:${n}`);
  }
  return report;
}
