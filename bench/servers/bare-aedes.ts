/**
 * The baseline of the e2e benchmark: a bare aedes broker (no journal, no forwarding, default in-memory
 * persistence) on a TCP listener with the same socket options as the gateway's. Prints {"port": N}.
 */
import { createServer } from 'node:net';
import { Aedes } from 'aedes';

const broker = await Aedes.createBroker();
const server = createServer({ noDelay: true }, broker.handle);
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(JSON.stringify({ port: typeof address === 'object' && address ? address.port : 0 }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
