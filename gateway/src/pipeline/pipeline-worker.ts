/**
 * The journal thread: owns the SQLite journal, its group commit and the uplink, so that a commit's fsync or a
 * batch's encoding never holds up the MQTT thread. It receives packed records, commits them, says which append
 * is durable, and streams the journal to the backend.
 */
import { readFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { credentials } from '@grpc/grpc-js';
import { createLogger, errorMessage } from '@fleetgate/common';
import { GroupCommit } from '../journal/group-commit.ts';
import { SqliteJournal } from '../journal/journal-sqlite.ts';
import { TailCache } from '../journal/tail-cache.ts';
import { Uplink } from '../uplink/uplink.ts';
import { unpackRecords } from './packed-records.ts';
import type { FromWorker, PipelineSettings, ToWorker } from './pipeline-protocol.ts';

const port = parentPort!;
const settings = (workerData as { data: PipelineSettings }).data;
const logger = createLogger({ name: 'gateway', level: settings.logLevel }).child({ thread: 'journal' });
const post = (message: FromWorker) => port.postMessage(message);

let journal: SqliteJournal;
try {
  journal = new SqliteJournal({ dir: settings.dataDir, durability: settings.durability });
} catch (err: unknown) {
  post({ type: 'fatal', error: `cannot open the journal in ${settings.dataDir}: ${errorMessage(err)}` });
  throw err;
}

const tail = new TailCache(journal, settings.tailCacheBytes);
let lastFailureLog = 0;
const commits = new GroupCommit({
  ...settings.groupCommit,
  journal,
  onCommitted: (result, records) => {
    tail.add(result.firstSeq, records);
    uplink.wake();
  },
  onFailed: (err) => {
    // A broken disk fails every commit; one line a second is enough to say so.
    if (Date.now() - lastFailureLog < 1000) return;
    lastFailureLog = Date.now();
    logger.error({ err: errorMessage(err), failedCommits: commits.stats().failedCommits }, 'journal commit failed');
  },
});

const { tokenFile, tls } = settings.uplinkAuth;
const uplink = new Uplink({
  ...settings.uplink,
  gatewayId: settings.gatewayId,
  version: settings.version,
  // Buffers arrive here as plain Uint8Arrays (structured clone); grpc-js wants Buffers.
  ...(tls ? { credentials: credentials.createSsl(asBuffer(tls.ca), asBuffer(tls.key), asBuffer(tls.cert)) } : {}),
  ...(tls?.serverName ? { serverName: tls.serverName } : {}),
  ...(tokenFile ? { getToken: () => readToken(tokenFile) } : {}),
  journal: tail,
  onCommand: (command) => post({ type: 'command', command }),
  onCommandAck: (ack) => post({ type: 'command-ack', ack }),
  onReady: () => post({ type: 'uplink-ready' }),
  onAcked: (throughSeq) => {
    tail.release(throughSeq);
    commits.ack(throughSeq);
  },
  logger,
});

port.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'append':
      commits.append(unpackRecords(message.records), (err) =>
        post(err ? { type: 'appended', id: message.id, error: errorMessage(err) } : { type: 'appended', id: message.id }),
      );
      return;
    case 'upstream':
      uplink.sendControl(message.frames);
      return;
    case 'last-device-seq':
      post({ type: 'last-device-seq', id: message.id, seq: journal.lastDeviceSeq(message.deviceId, message.epoch) });
      return;
    case 'stats':
      post({ type: 'stats', id: message.id, stats: { journal: { ...journal.stats(), ...commits.stats(), ...tail.stats() }, uplink: uplink.stats() } });
      return;
    case 'close':
      commits.close();
      uplink.close();
      journal.close();
      post({ type: 'closed', id: message.id });
      port.close();
      return;
  }
});

function asBuffer(bytes: Uint8Array | undefined): Buffer | null {
  return bytes ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) : null;
}

/** The gateway's token, from its file; the file may be replaced at any time (token rotation). */
function readToken(file: string): string {
  const token = readFileSync(file, 'utf8').trim();
  if (token === '') throw new Error(`${file} is empty`);
  return token;
}

logger.info({ file: journal.file, lastSeq: journal.lastSeq, ackedThrough: journal.ackedThrough, rows: journal.stats().rows }, 'journal open');
uplink.start();
post({ type: 'ready', lastSeq: journal.lastSeq, ackedThrough: journal.ackedThrough });
