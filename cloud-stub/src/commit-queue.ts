/**
 * Group commit for the backend: batches from every gateway stream that arrive while a commit runs go into the
 * next one, so one fsync covers many batches. Each submit resolves when its batch is durable, in order.
 */
import type { Sink, SinkBatch, SinkOutcome } from './sink/sink.ts';

interface Waiting {
  batch: SinkBatch;
  resolve: (outcome: SinkOutcome) => void;
  reject: (err: unknown) => void;
}

export interface CommitQueueStats {
  commits: number;
  batches: number;
  failedCommits: number;
  waitingBatches: number;
}

export class CommitQueue {
  private waiting: Waiting[] = [];
  private running = false;
  private scheduled = false;
  private readonly counters = { commits: 0, batches: 0, failedCommits: 0 };

  constructor(private readonly sink: Sink) {}

  submit(batch: SinkBatch): Promise<SinkOutcome> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ batch, resolve, reject });
      this.schedule();
    });
  }

  stats(): CommitQueueStats {
    return { ...this.counters, waitingBatches: this.waiting.length };
  }

  private schedule(): void {
    if (this.running || this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => void this.run());
  }

  private async run(): Promise<void> {
    this.scheduled = false;
    const items = this.waiting;
    this.waiting = [];
    if (items.length === 0) return;
    this.running = true;
    try {
      const outcomes = await this.sink.commit(items.map((item) => item.batch));
      this.counters.commits++;
      this.counters.batches += items.length;
      items.forEach((item, i) => item.resolve(outcomes[i]!));
    } catch (err: unknown) {
      this.counters.failedCommits++;
      for (const item of items) item.reject(err);
    } finally {
      this.running = false;
      if (this.waiting.length > 0) this.schedule();
    }
  }
}
