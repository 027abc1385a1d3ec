/**
 * What one simulated device knows of its own messages: how many it sent, which were acknowledged, which were in
 * flight when a connection dropped (MQTT QoS 1 may deliver those twice). The verifier compares it with what
 * arrived at the cloud.
 */
export class DeviceLedger {
  /** Message numbers 1..sent were handed to the client library. */
  sent = 0;
  ackedCount = 0;
  /** Messages the client library refused (e.g. the SDK's outbox was full): never sent, not a loss. */
  refused = 0;
  readonly inFlight = new Set<number>();
  /** For each message in flight at a connection drop, how many drops it was in flight for. */
  readonly dropsInFlight = new Map<number, number>();
  private acked = new Uint8Array(256);

  constructor(
    readonly deviceId: string,
    readonly protocol: 'mqtt' | 'sdk',
  ) {}

  markSent(n: number, awaitsAck: boolean): void {
    this.sent = Math.max(this.sent, n);
    if (awaitsAck) this.inFlight.add(n);
  }

  markAcked(n: number): void {
    if (!this.inFlight.delete(n) || this.isAcked(n)) return;
    if (n >= this.acked.length * 8) {
      const grown = new Uint8Array(Math.max(this.acked.length * 2, (n >> 3) + 1));
      grown.set(this.acked);
      this.acked = grown;
    }
    this.acked[n >> 3]! |= 1 << (n & 7);
    this.ackedCount++;
  }

  isAcked(n: number): boolean {
    return n < this.acked.length * 8 && (this.acked[n >> 3]! & (1 << (n & 7))) !== 0;
  }

  onConnectionDrop(): void {
    for (const n of this.inFlight) this.dropsInFlight.set(n, (this.dropsInFlight.get(n) ?? 0) + 1);
  }

  /** Copies of message n that may arrive: one, plus one per drop it was in flight for (QoS 1 resends). */
  copiesAllowed(n: number): number {
    return 1 + (this.dropsInFlight.get(n) ?? 0);
  }
}
