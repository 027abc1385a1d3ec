/** `npm run bench -- <name> [options]`: runs one benchmark; each prints its figures and a same-run baseline. */
import { connections } from './connections.ts';
import { e2e } from './e2e.ts';
import { install } from './install.ts';
import { jetstream } from './jetstream.ts';
import { latency } from './latency.ts';
import { memory } from './memory.ts';
import { replay } from './replay.ts';
import { sdk } from './sdk.ts';
import { startup } from './startup.ts';
import { upstreams } from './upstreams.ts';

const benchmarks: Record<string, (argv: string[]) => Promise<unknown>> = {
  e2e,
  sdk,
  replay,
  latency,
  memory,
  connections,
  jetstream,
  upstreams,
  startup,
  install,
};

const [name, ...argv] = process.argv.slice(2);
const bench = name === undefined ? undefined : benchmarks[name];
if (!bench) {
  process.stderr.write(`usage: npm run bench -- <${Object.keys(benchmarks).join('|')}> [options]\n`);
  process.exit(2);
}
await bench(argv);
process.exit(0);
