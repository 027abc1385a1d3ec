/**
 * A device for end-to-end tests: a real mqtt.js client publishing numbered QoS 1 messages ("<deviceId>:<n>")
 * on devices/<id>/telemetry, at most `window` unacknowledged at once, remembering which were PUBACKed.
 * mqtt.js reconnects by itself and resends what was not acknowledged, as a real device would.
 */
import mqtt, { type MqttClient } from 'mqtt';

export class TestDevice {
  readonly client: MqttClient;
  /** Message numbers whose PUBACK arrived. */
  readonly acked = new Set<number>();
  /**
   * For each message that was in flight when a connection dropped, how many drops it was in flight for: mqtt.js
   * resends it after each, and a gateway that had committed it but could not PUBACK it before the drop receives
   * it once more each time (MQTT QoS 1 allows that).
   */
  readonly dropsInFlight = new Map<number, number>();
  private next = 1;
  private closed = false;
  private limit = 0;
  private outstanding = new Set<number>();
  private idle: Array<() => void> = [];
  private readonly errors: Error[] = [];

  constructor(
    readonly id: string,
    port: number,
    private readonly window = 20,
  ) {
    this.client = mqtt.connect({
      host: '127.0.0.1',
      port,
      clientId: id,
      protocolVersion: 4,
      reconnectPeriod: 100,
      connectTimeout: 5000,
    });
    this.client.on('error', (err) => this.errors.push(err));
    this.client.on('close', () => {
      for (const n of this.outstanding) this.dropsInFlight.set(n, (this.dropsInFlight.get(n) ?? 0) + 1);
    });
  }

  connected(): Promise<void> {
    if (this.client.connected) return Promise.resolve();
    return new Promise((resolve) => this.client.once('connect', () => resolve()));
  }

  /** The most times each message may arrive: once, plus once per connection drop it was in flight for. */
  get maxCopies(): Map<number, number> {
    return new Map([...this.dropsInFlight].map(([n, drops]) => [n, 1 + drops]));
  }

  /** Message numbers handed to mqtt.js and not acknowledged yet. */
  get inFlight(): number[] {
    return [...this.outstanding];
  }

  get published(): number {
    return this.next - 1;
  }

  /** Publishes until message number `count` has been published (keeping `window` in flight); resolves when all are acked. */
  publishUpTo(count: number): Promise<void> {
    this.limit = count;
    this.pump();
    return this.whenIdle();
  }

  /** Keeps publishing until stop(). */
  run(): void {
    this.limit = Infinity;
    this.pump();
  }

  /** Stops publishing new messages; resolves once everything published was acknowledged. */
  stop(): Promise<void> {
    this.limit = this.next - 1;
    return this.whenIdle();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.client.endAsync(true);
  }

  private whenIdle(): Promise<void> {
    if (this.outstanding.size === 0 && this.next > this.limit) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private pump(): void {
    while (this.outstanding.size < this.window && this.next <= this.limit) {
      const n = this.next++;
      this.outstanding.add(n);
      this.send(n);
    }
  }

  private send(n: number): void {
    this.client.publish(`devices/${this.id}/telemetry`, `${this.id}:${n}`, { qos: 1 }, (err) => {
      // mqtt.js keeps what it had stored and resends it after reconnecting by itself; an error means the
      // message was dropped before it was stored (a publish queued while a reconnect replayed its store, and
      // the connection closed again): it was never sent, so the device sends it again, as firmware would.
      if (err) {
        if (!this.closed) setImmediate(() => this.send(n));
        return;
      }
      this.outstanding.delete(n);
      this.acked.add(n);
      this.pump();
      if (this.outstanding.size === 0 && this.next > this.limit) for (const resolve of this.idle.splice(0)) resolve();
    });
  }
}

/** Resolves when `predicate` holds, checking every `everyMs`; rejects with `what` after `timeoutMs`. */
export async function waitUntil<T>(
  what: string,
  predicate: () => T | Promise<T>,
  timeoutMs = 30_000,
  everyMs = 50,
): Promise<Exclude<T, false | 0 | '' | null | undefined>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value as Exclude<T, false | 0 | '' | null | undefined>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
