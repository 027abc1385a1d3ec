/** The sink's thread (see threaded-sink.ts): owns the SqliteSink and answers requests in order. */
import { parentPort, workerData } from 'node:worker_threads';
import { type Durability, errorMessage } from '@fleetgate/core';
import { SqliteSink } from './sink-sqlite.ts';
import { unpack, type SinkReply, type SinkRequest } from './threaded-sink.ts';

const port = parentPort!;
const { dir, durability } = (workerData as { data: { dir: string; durability: Durability } }).data;
const reply = (message: SinkReply) => port.postMessage(message);

let sink: SqliteSink;
try {
  sink = new SqliteSink({ dir, durability });
} catch (err: unknown) {
  reply({ id: 0, ok: false, fatal: `cannot open the sink in ${dir}: ${errorMessage(err)}` });
  throw err;
}

port.on('message', (request: SinkRequest) => {
  if (request.op === 'close') {
    void sink.close().finally(() => {
      reply({ id: request.id, ok: true, value: undefined });
      port.close();
    });
    return;
  }
  void handle(request).then(
    (value) => reply({ id: request.id, ok: true, value }),
    (err: unknown) => reply({ id: request.id, ok: false, error: errorMessage(err) }),
  );
});

async function handle(request: Exclude<SinkRequest, { op: 'close' }>): Promise<unknown> {
  switch (request.op) {
    case 'commit':
      return sink.commit(unpack(request.packed));
    case 'recordGap':
      return sink.recordGap(request.gatewayId, request.gap);
    case 'lastSeq':
      return sink.lastSeq(request.gatewayId);
    case 'stats':
      return sink.stats();
  }
}
