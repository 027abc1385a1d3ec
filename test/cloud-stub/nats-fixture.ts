import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from 'nats';
import { NatsCluster } from '../support/nats-cluster.ts';
import { NATS_SERVER, requireProgram } from '../support/system-packages.ts';

/** A real cluster for the tests of one describe block: started in `before`, every node killed in `after`. */
export function useNatsCluster(): { readonly cluster: NatsCluster; readonly nc: NatsConnection } {
  let cluster: NatsCluster | undefined;
  let nc: NatsConnection | undefined;
  let dir: string | undefined;
  before(async function () {
    this.timeout(60_000);
    requireProgram(this, NATS_SERVER);
    dir = mkdtempSync(join(tmpdir(), 'fleetgate-nats-'));
    cluster = await NatsCluster.start({ dir });
    nc = await connect({ servers: cluster.urls, name: 'test', maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  });
  after(async () => {
    await nc?.close();
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return {
    get cluster() {
      if (!cluster) throw new Error('cluster read outside a test');
      return cluster;
    },
    get nc() {
      if (!nc) throw new Error('connection read outside a test');
      return nc;
    },
  };
}
