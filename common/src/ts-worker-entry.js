// Entry of every worker thread started by startWorker() (ts-worker.ts). On Node 20 a worker does not inherit
// the tsx loader of its parent, whether that was registered with --import or register(), so the worker
// registers it itself and then loads the TypeScript module named in workerData.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.module);
