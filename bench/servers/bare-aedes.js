/**
 * The baseline of the benchmarks: a bare aedes broker (no journal, no forwarding, default in-memory
 * persistence) on a TCP listener with the same socket options as the gateway's. Plain JavaScript, run by plain
 * `node` like the built gateway (no tsx in the baseline's memory or start-up). Prints {"port": N}; with
 * `PORT` in the environment it listens there.
 */
import { createServer } from 'node:net';
import { Aedes } from 'aedes';

const broker = await Aedes.createBroker();
const server = createServer({ noDelay: true }, broker.handle);
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(JSON.stringify({ port: typeof address === 'object' && address ? address.port : 0 }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
