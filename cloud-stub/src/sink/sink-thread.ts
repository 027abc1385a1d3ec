/** The sink's thread (see threaded-sink.ts): owns the SqliteSink and answers over the worker RPC. */
import { parentPort, workerData } from 'node:worker_threads';
import { type Durability, errorMessage } from '@fleetgate/core';
import { RpcServer } from '@fleetgate/common';
import { SqliteSink } from './sink-sqlite.ts';

import { SinkThreadError } from '../errors.ts';
import { unpack, type SinkThreadMethods } from './threaded-sink.ts';

const port = parentPort!;
const { dir, durability } = (workerData as { data: { dir: string; durability: Durability } }).data;

let sink: SqliteSink;
const server = new RpcServer<SinkThreadMethods>(port, {
  commit: (packed) => sink.commit(unpack(packed)),
  recordGap: (gatewayId, gap) => sink.recordGap(gatewayId, gap),
  lastSeq: (gatewayId) => sink.lastSeq(gatewayId),
  stats: () => sink.stats(),
  close: async () => {
    try {
      await sink.close();
    } finally {
      server.close(); // the answer to this call is the last message: then the thread can end
    }
  },
});
try {
  sink = new SqliteSink({ dir, durability });
} catch (err: unknown) {
  server.fatal(new SinkThreadError(`cannot open the sink in ${dir}: ${errorMessage(err)}`, { cause: err }));
  throw err;
}
