import { JetStreamCommandStore } from '../../cloud-stub/src/commands/command-store-jetstream.ts';
import { commandStoreContract } from './command-store.contract.ts';
import { useNatsCluster } from './nats-fixture.ts';

describe('command store (jetstream) on a 3-node cluster', function () {
  this.timeout(60_000);
  const nats = useNatsCluster();
  // Every contract case gets buckets of its own (a prefix of its own): its temp dir names them.
  const prefixes = new Map<string, string>();
  const prefixFor = (dir: string) => prefixes.get(dir) ?? prefixes.set(dir, `contract${prefixes.size + 1}`).get(dir)!;
  commandStoreContract('jetstream KV (R3)', (dir) =>
    JetStreamCommandStore.open(nats.nc, { prefix: prefixFor(dir), replicas: 3 }),
  );
});
