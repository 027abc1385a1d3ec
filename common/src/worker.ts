import { Worker, type ResourceLimits } from 'node:worker_threads';

/**
 * The URL of the module `name` (without extension) next to the caller's own module `callerUrl`
 * (import.meta.url): `./name.js` in a built package, `./name.ts` when the sources run (tests, bench). A
 * worker thread's entry is a file, not an import, so the build cannot rewrite its extension.
 */
export function workerModule(callerUrl: string, name: string): URL {
  return new URL(`./${name}${callerUrl.endsWith('.ts') ? '.ts' : '.js'}`, callerUrl);
}

/** Whether this module runs as TypeScript source (the repository's tests and benchmarks) or built. */
const FROM_SOURCES = import.meta.url.endsWith('.ts');

/**
 * Starts a worker thread running `module` (from workerModule); the module reads its settings from
 * `workerData.data`. Built JavaScript starts as it is. When the sources run, the thread starts through
 * dev-worker-entry, which registers tsx in it first (on Node 20 a worker does not inherit its parent's loader).
 * tsx is a dev dependency: an installed package never takes that path.
 */
export function startWorker(module: URL, data: unknown, name: string, resourceLimits?: ResourceLimits): Worker {
  const limits = resourceLimits ? { resourceLimits } : {};
  if (!FROM_SOURCES) return new Worker(module, { workerData: { data }, name, ...limits });
  return new Worker(new URL('./dev-worker-entry.js', import.meta.url), {
    workerData: { module: module.href, data },
    name,
    ...limits,
  });
}
