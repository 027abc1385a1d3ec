import type { SendResult } from './client-options.ts';

type Waiter = { resolve: (result: SendResult) => void; reject: (err: Error) => void };

/**
 * The send() promises waiting for the gateway to commit their message, by seq. Seqs are taken in increasing order
 * and a Map keeps insertion order, so an Ack through N settles a prefix.
 */
export class SendWaiters {
  private readonly waiting = new Map<number, Waiter>();

  wait(seq: number): Promise<SendResult> {
    return new Promise<SendResult>((resolve, reject) => this.waiting.set(seq, { resolve, reject }));
  }

  /** The gateway committed every message through `throughSeq`. */
  resolveThrough(throughSeq: number): void {
    for (const [seq, waiter] of this.waiting) {
      if (seq > throughSeq) break;
      this.waiting.delete(seq);
      waiter.resolve({ seq });
    }
  }

  /** Every send still waiting fails, each with an error of its own. */
  rejectAll(error: () => Error): void {
    for (const waiter of this.waiting.values()) waiter.reject(error());
    this.waiting.clear();
  }
}
