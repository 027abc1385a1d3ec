import { SqliteCloudCommandStore } from '../../cloud-stub/src/commands/command-store-sqlite.ts';
import { commandStoreContract } from './command-store.contract.ts';

commandStoreContract('sqlite', (dir) => new SqliteCloudCommandStore({ dir, durability: 'process' }));
