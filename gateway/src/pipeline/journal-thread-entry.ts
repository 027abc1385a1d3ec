/** The journal thread's entry (started by pipeline.ts through common/src/worker.ts): its settings and its port. */
import { parentPort, workerData } from 'node:worker_threads';
import { JournalThread } from './journal-thread.ts';
import type { PipelineSettings } from './pipeline-protocol.ts';

JournalThread.open((workerData as { data: PipelineSettings }).data, parentPort!);
