/**
 * The check the simulator exists for: what arrived at the cloud-stub against what each device was told was
 * safe. Per device: acked messages that never arrived (lost), copies beyond what the protocol allows
 * (duplicates; an MQTT QoS 1 message in flight at a connection drop may arrive once more per drop:
 * redelivered), and messages that arrived, in the gateway's seq order, behind a later message of the same
 * device (out of order). Also the latency from each message's device time to its commit at the cloud.
 */
import type { ExportedGap, ExportedRecord } from '@fleetgate/cloud-stub';
import type { DeviceLedger } from './ledger.ts';
import { latencyHistogram, percentilesMs, recordMs } from './latency.ts';
import { readPayloadHeader } from './payload.ts';
import type { DeviceVerification, LatencySample, LatencySummary, Verification } from './result.ts';

const EXAMPLES = 20;

interface Arrival {
  gatewayId: string;
  seq: number;
  n: number;
}

export interface VerifyOutcome {
  verification: Verification;
  latency: LatencySummary;
  latencyOverTime: LatencySample[];
  /** Records under the fleet's id prefix from devices it does not know, or whose payload it did not make. */
  foreign: number;
}

export class Verifier {
  private readonly byDevice = new Map<string, { ledger: DeviceLedger; arrivals: Arrival[] }>();
  private readonly histogram = latencyHistogram();
  private readonly buckets = new Map<number, number[]>();
  private foreign = 0;
  /** Gateways the fleet's records came through: whose Gaps count. */
  readonly gatewayIds = new Set<string>();

  constructor(
    ledgers: readonly DeviceLedger[],
    /** ms since the epoch the run started: latencyOverTime is bucketed from it. */
    private readonly startedAt: number,
  ) {
    for (const ledger of ledgers) this.byDevice.set(ledger.deviceId, { ledger, arrivals: [] });
  }

  add(record: ExportedRecord): void {
    const device = this.byDevice.get(record.deviceId);
    const header = readPayloadHeader(Buffer.from(record.payload, 'base64').toString('latin1'));
    if (!device || !header) {
      this.foreign++;
      return;
    }
    this.gatewayIds.add(record.gatewayId);
    device.arrivals.push({ gatewayId: record.gatewayId, seq: record.seq, n: header.n });
    const latencyMs = Math.max(0, record.receivedTime - header.timeMs);
    recordMs(this.histogram, latencyMs);
    const second = Math.floor((record.receivedTime - this.startedAt) / 1000);
    let bucket = this.buckets.get(second);
    if (!bucket) this.buckets.set(second, (bucket = []));
    bucket.push(latencyMs);
  }

  finish(gaps: readonly ExportedGap[]): VerifyOutcome {
    const perDevice: DeviceVerification[] = [];
    const examples: Verification['examples'] = { lost: [], duplicates: [], outOfOrder: [] };
    const note = (list: string[], example: string) => void (list.length < EXAMPLES && list.push(example));
    let unackedMissing = 0;
    for (const { ledger, arrivals } of this.byDevice.values()) {
      arrivals.sort((a, b) => (a.gatewayId === b.gatewayId ? a.seq - b.seq : a.gatewayId < b.gatewayId ? -1 : 1));
      let top = ledger.sent;
      for (const { n } of arrivals) top = Math.max(top, n);
      const copies = new Uint32Array(top + 1);
      const row: DeviceVerification = {
        deviceId: ledger.deviceId,
        protocol: ledger.protocol,
        sent: ledger.sent,
        acked: ledger.ackedCount,
        arrived: 0,
        lost: 0,
        duplicates: 0,
        redelivered: 0,
        outOfOrder: 0,
      };
      let highest = 0;
      for (const { n } of arrivals) {
        const count = ++copies[n]!;
        if (count === 1) {
          row.arrived++;
          if (n < highest) {
            row.outOfOrder++;
            note(examples.outOfOrder, `${ledger.deviceId}#${n}`);
          }
          highest = Math.max(highest, n);
        } else if (ledger.protocol === 'mqtt' && count <= ledger.copiesAllowed(n)) {
          row.redelivered++;
        } else {
          row.duplicates++;
          note(examples.duplicates, `${ledger.deviceId}#${n}`);
        }
      }
      for (let n = 1; n <= ledger.sent; n++) {
        if (copies[n] !== 0) continue;
        if (ledger.isAcked(n)) {
          row.lost++;
          note(examples.lost, `${ledger.deviceId}#${n}`);
        } else {
          unackedMissing++;
        }
      }
      perDevice.push(row);
    }
    const sum = (key: keyof DeviceVerification) => perDevice.reduce((total, row) => total + (row[key] as number), 0);
    const byReason: Record<string, number> = {};
    for (const gap of gaps) byReason[gap.reason] = (byReason[gap.reason] ?? 0) + gap.count;
    const lost = sum('lost');
    const duplicates = sum('duplicates');
    const outOfOrder = sum('outOfOrder');
    const verification: Verification = {
      devices: perDevice.length,
      sent: sum('sent'),
      acked: sum('acked'),
      arrived: sum('arrived'),
      lost,
      duplicates,
      redelivered: sum('redelivered'),
      outOfOrder,
      unackedMissing,
      gaps: { ranges: gaps.length, records: gaps.reduce((total, gap) => total + gap.count, 0), byReason },
      examples,
      perDevice,
      ok: lost === 0 && duplicates === 0 && outOfOrder === 0,
    };
    const latencyOverTime: LatencySample[] = [...this.buckets]
      .sort(([a], [b]) => a - b)
      .map(([second, values]) => {
        values.sort((a, b) => a - b);
        const at = (p: number) => +values[Math.min(values.length - 1, Math.floor((p / 100) * values.length))]!.toFixed(3);
        return { t: second, p50: at(50), p99: at(99), max: +values[values.length - 1]!.toFixed(3), count: values.length };
      });
    return {
      verification,
      latency: { ...percentilesMs(this.histogram), count: this.histogram.totalCount },
      latencyOverTime,
      foreign: this.foreign,
    };
  }
}

/** The records of devices whose id starts with `devicePrefix`, streamed from the cloud-stub's admin API. */
export async function* fetchRecords(cloudAdmin: string, devicePrefix: string): AsyncIterable<ExportedRecord> {
  const res = await fetch(`${cloudAdmin}/v1/records?devicePrefix=${encodeURIComponent(devicePrefix)}`);
  if (!res.ok || !res.body) throw new Error(`GET ${cloudAdmin}/v1/records: ${res.status} ${await res.text()}`);
  const decoder = new TextDecoder();
  let rest = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    rest += decoder.decode(chunk, { stream: true });
    const lines = rest.split('\n');
    rest = lines.pop()!;
    for (const line of lines) if (line !== '') yield JSON.parse(line) as ExportedRecord;
  }
  if (rest.trim() !== '') throw new Error(`GET ${cloudAdmin}/v1/records ended in the middle of a record`);
}

export async function fetchGaps(cloudAdmin: string, gatewayIds: Iterable<string>): Promise<ExportedGap[]> {
  const res = await fetch(`${cloudAdmin}/v1/gaps`);
  if (!res.ok) throw new Error(`GET ${cloudAdmin}/v1/gaps: ${res.status} ${await res.text()}`);
  const wanted = new Set(gatewayIds);
  return ((await res.json()) as ExportedGap[]).filter((gap) => wanted.has(gap.gatewayId));
}
