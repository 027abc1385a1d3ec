// Entry of a worker thread that runs TypeScript sources (see worker.ts): registers tsx in this thread, then
// loads the module named in workerData. Plain JavaScript, because nothing can run TypeScript before it; it is
// not built and not shipped: only the repository's tests and benchmarks come here.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.module);
