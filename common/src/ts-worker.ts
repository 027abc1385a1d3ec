import { Worker } from 'node:worker_threads';

/**
 * Starts a worker thread running the TypeScript module `module` (a file URL). The module reads its own
 * settings from `workerData.data`.
 */
export function startWorker(module: URL, data: unknown, name: string): Worker {
  return new Worker(new URL('./ts-worker-entry.js', import.meta.url), {
    workerData: { module: module.href, data },
    name,
  });
}
