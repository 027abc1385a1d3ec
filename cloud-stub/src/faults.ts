/**
 * Fault injection for drills and tests (`POST /v1/faults`), so that anyone can watch a gateway meet a backend
 * that misbehaves:
 * - `holdAcks`: batches are still committed but their acks (and the credit that comes with them) wait;
 *   releasing sends them, in order. The gateway's credit runs out, it stops sending, its journal grows.
 * - `rejectPayloads`: a record whose payload contains this text is refused as invalid (a per-record rejection
 *   in the ack); the gateway retries it a few times, then dead-letters it.
 */
export interface FaultsView {
  holdAcks: boolean;
  /** Payloads containing this text are rejected; null: none are. */
  rejectPayloads: string | null;
}

export class Faults {
  private held: Array<() => void> | undefined;
  private reject: Buffer | undefined;

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

  rejectPayloads(text: string | null): void {
    this.reject = text ? Buffer.from(text) : undefined;
  }

  /** Why this payload is refused, if it is. */
  rejects(payload: Uint8Array): string | undefined {
    const reject = this.reject;
    if (reject === undefined) return undefined;
    return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).includes(reject)
      ? 'payload refused by fault injection (rejectPayloads)'
      : undefined;
  }

  view(): FaultsView {
    return { holdAcks: this.holding, rejectPayloads: this.reject?.toString() ?? null };
  }
}
