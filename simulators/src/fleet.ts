/**
 * The fleet and its pacer. Each active device takes readings at the current rate (jittered so that devices do
 * not fire in step); a reading waits in the device's buffer until its window has room, so the time in it (the
 * reading's `_t`) counts in the latency, as it would on a real device behind a slow link. A buffer holds at
 * most BUFFER readings: older ones are discarded and counted, never sent.
 */
import type { SimDevice } from './devices.ts';

const BUFFER = 10_000;

export interface FleetTotals {
  sent: number;
  acked: number;
  connected: number;
  /** Readings discarded by full device buffers. */
  discarded: number;
  /** Messages the client library refused. */
  refused: number;
}

export class Fleet {
  /** Readings per second per active device. */
  rate = 0;
  /** Devices [0, active) take readings; devices are started (connected) when they first become active. */
  private activeCount = 0;
  private started = 0;
  private readonly due: Float64Array;
  private readonly buffers: number[][];
  private readonly heads: Uint32Array;
  private readonly taken: Float64Array;
  private discarded = 0;
  private lastTick = 0;

  constructor(
    readonly devices: readonly SimDevice[],
    /** Readings per device at most (--messages), or Infinity. */
    private readonly messagesPerDevice = Infinity,
  ) {
    this.due = Float64Array.from(devices, () => Math.random());
    this.buffers = devices.map(() => []);
    this.heads = new Uint32Array(devices.length);
    this.taken = new Float64Array(devices.length);
  }

  get active(): number {
    return this.activeCount;
  }

  set active(count: number) {
    this.activeCount = Math.max(0, Math.min(this.devices.length, Math.floor(count)));
    while (this.started < this.activeCount) this.devices[this.started++]!.start();
  }

  /** Takes the readings due since the last tick and sends what the devices' windows allow. */
  tick(nowMs: number): void {
    const dt = this.lastTick === 0 ? 0 : (nowMs - this.lastTick) / 1000;
    this.lastTick = nowMs;
    for (let i = 0; i < this.started; i++) {
      const buffer = this.buffers[i]!;
      if (i < this.activeCount && this.taken[i]! < this.messagesPerDevice) {
        this.due[i]! += this.rate * dt;
        while (this.due[i]! >= 1 && this.taken[i]! < this.messagesPerDevice) {
          this.due[i]! -= 1;
          this.taken[i]!++;
          buffer.push(nowMs);
        }
        if (buffer.length - this.heads[i]! > BUFFER) {
          this.heads[i]! += 1;
          this.discarded++;
        }
      }
      const device = this.devices[i]!;
      while (this.heads[i]! < buffer.length && device.ready) {
        device.send(device.ledger.sent + 1, buffer[this.heads[i]!++]!);
      }
      if (this.heads[i]! > 1024 && this.heads[i]! * 2 > buffer.length) {
        buffer.splice(0, this.heads[i]!);
        this.heads[i] = 0;
      }
    }
  }

  /** Whether every device took all its readings (--messages) and sent them. */
  get allTaken(): boolean {
    if (this.messagesPerDevice === Infinity) return false;
    return this.devices.every((_, i) => this.taken[i] === this.messagesPerDevice && this.heads[i] === this.buffers[i]!.length);
  }

  /** Readings taken and not yet sent, over the fleet. */
  get buffered(): number {
    let n = 0;
    for (let i = 0; i < this.devices.length; i++) n += this.buffers[i]!.length - this.heads[i]!;
    return n;
  }

  /** Messages sent and not yet acknowledged, over the fleet. */
  get inFlight(): number {
    let n = 0;
    for (const device of this.devices) n += device.ledger.inFlight.size;
    return n;
  }

  /** Each active device drops its connection with probability perMinute over `ms` (--churn). */
  churn(perMinute: number, ms: number): void {
    const p = (perMinute * ms) / 60_000;
    for (let i = 0; i < this.activeCount; i++) if (Math.random() < p) this.devices[i]!.drop();
  }

  /** Every started device drops its connection at once: they all reconnect together. */
  storm(): void {
    for (let i = 0; i < this.started; i++) this.devices[i]!.drop();
  }

  totals(): FleetTotals {
    const totals: FleetTotals = { sent: 0, acked: 0, connected: 0, discarded: this.discarded, refused: 0 };
    for (const device of this.devices) {
      totals.sent += device.ledger.sent;
      totals.acked += device.ledger.ackedCount;
      totals.refused += device.ledger.refused;
      if (device.connected) totals.connected++;
    }
    return totals;
  }

  async close(): Promise<void> {
    await Promise.all(this.devices.map((device) => device.close()));
  }
}
