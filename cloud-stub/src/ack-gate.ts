/**
 * Fault injection for drills and tests (`POST /v1/faults {"holdAcks": true}`): while held, batches are still
 * committed but their acks wait; release() sends them, in order. This is how to watch a gateway meet a backend
 * that stops acknowledging: its window fills, it stops sending, its journal grows.
 */
export class AckGate {
  private held: Array<() => void> | undefined;

  get holding(): boolean {
    return this.held !== undefined;
  }

  /** Sends now, or later if acks are held. */
  pass(send: () => void): void {
    if (this.held) this.held.push(send);
    else send();
  }

  hold(): void {
    this.held ??= [];
  }

  release(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const send of held) send();
  }
}
