/**
 * The journal thread: owns the SQLite journal, its group commit, the dead letters and the uplink, so that a
 * commit's fsync or a batch's encoding never holds up the MQTT thread. It receives packed records, commits
 * them, says which append is durable (or refused, when the journal or the disk is full), and streams the
 * journal to the backend, freeing what the backend acknowledges.
 */
import { readFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { credentials } from '@grpc/grpc-js';
import { createLogger, errorMessage } from '@fleetgate/common';
import { DeadLetters } from '../journal/dead-letters.ts';
import { GroupCommit } from '../journal/group-commit.ts';
import { JournalFullError } from '../journal/journal.ts';
import { openJournal, type HealReport } from '../journal/heal.ts';
import type { SqliteJournal } from '../journal/journal-sqlite.ts';
import { TailCache } from '../journal/tail-cache.ts';
import { Uplink } from '../uplink/uplink.ts';
import { unpackRecords } from './packed-records.ts';
import type { FromWorker, PipelineSettings, ToWorker } from './pipeline-protocol.ts';

const port = parentPort!;
const settings = (workerData as { data: PipelineSettings }).data;
const logger = createLogger({ name: 'gateway', level: settings.logLevel }).child({ thread: 'journal' });
const post = (message: FromWorker) => port.postMessage(message);
/** How often letters marked for replay (by `fleetgate deadletter replay`) are picked up. */
const REPLAY_POLL_MS = 5000;

let journal: SqliteJournal;
let healed: HealReport | undefined;
try {
  ({ journal, healed } = openJournal({
    dir: settings.dataDir,
    durability: settings.durability,
    limits: settings.limits,
    ...(settings.maxFileBytes ? { maxFileBytes: settings.maxFileBytes } : {}),
  }));
} catch (err: unknown) {
  post({ type: 'fatal', error: `cannot open the journal in ${settings.dataDir}: ${errorMessage(err)}` });
  throw err;
}
if (healed) {
  const { damage, movedTo, salvaged, lost, gaps } = healed;
  logger.error({ damage, movedTo, salvaged, lost, gaps: gaps.length }, 'the journal was damaged: readable rows salvaged into a fresh journal, the rest reported upstream as gaps');
}
const deadLetters = new DeadLetters(journal.db);

const tail = new TailCache(journal, settings.tailCacheBytes);
let lastFailureLog = 0;
const commits = new GroupCommit({
  ...settings.groupCommit,
  journal,
  rejectWhenFull: settings.limits.policy === 'reject-new' && settings.limits.maxBytes > 0,
  onCommitted: (result) => {
    tail.add(result.firstSeq, result.stored);
    tail.release(journal.ackedThrough);
    for (const gap of result.gaps) tail.forget(gap);
    if (result.gaps.length > 0) logger.warn({ gaps: result.gaps }, 'records dropped by the journal limits: reported as gaps');
    uplink.wake(result.gaps.length > 0);
  },
  onFailed: (err) => {
    // A broken disk fails every commit; one line a second is enough to say so.
    if (Date.now() - lastFailureLog < 1000) return;
    lastFailureLog = Date.now();
    logger.error({ err: errorMessage(err), failedCommits: commits.stats().failedCommits }, 'journal commit failed');
  },
  onDiskFull: (full) =>
    full
      ? logger.error('the disk is full: appends are refused (devices keep their data) until space returns')
      : logger.warn('the disk takes writes again: appends resume'),
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
  onWelcome: (backendLastSeq) => {
    // A journal the backend has never seen, while the backend holds seqs of this gateway: the data folder was
    // lost (or is new on a replaced machine). So is a backend ahead of the journal (restored from an old copy).
    // Either way the unacked rows move above the backend's seqs, or it would take them for resends.
    const fresh = !journal.welcomed && backendLastSeq > 0;
    if (fresh || backendLastSeq > journal.lastSeq) {
      commits.flush(); // releases waiting to be committed are in the old numbering
      const journalLastSeq = journal.lastSeq;
      const moved = journal.moveAbove(backendLastSeq);
      tail.clear();
      logger.error(
        { backendLastSeq, journalLastSeq, moved, reason: fresh ? 'a journal the backend has not seen' : 'the backend is ahead of the journal' },
        'the backend holds seqs of this gateway that this journal did not give out (data folder lost or restored?): unsent records renumbered above them',
      );
    }
    journal.markWelcomed();
  },
  onReleased: (range) => {
    tail.forget(range);
    commits.release(range);
  },
  onDeadLetter: (record, reason) => {
    deadLetters.add(record, reason, Date.now());
    const range = { from: record.seq, to: record.seq };
    tail.forget(range);
    commits.release(range);
  },
  logger,
});

/** Re-appends the dead letters marked for replay, as new records. */
function replayDeadLetters(): void {
  const { records, done } = deadLetters.takeReplays(Date.now());
  if (records.length === 0) return;
  commits.append(records, (err) => {
    if (err) return logger.error({ err: err.message }, 'dead letters not replayed: they stay marked');
    done();
    logger.info({ records: records.length }, 'dead letters replayed as new records');
  });
}
const replayTimer = setInterval(replayDeadLetters, REPLAY_POLL_MS);
replayTimer.unref();
// Space freed by acks goes back to the file system a step at a time, also when no commit comes to do it.
const maintainTimer = setInterval(() => {
  try {
    journal.maintain();
  } catch (err: unknown) {
    logger.warn({ err: errorMessage(err) }, 'journal maintenance failed (retried in a second)');
  }
}, 1000);
maintainTimer.unref();

port.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'append':
      commits.append(unpackRecords(message.records), (err) =>
        post(
          err instanceof JournalFullError
            ? { type: 'appended', id: message.id, error: err.message, full: err.reason }
            : err
              ? { type: 'appended', id: message.id, error: errorMessage(err) }
              : { type: 'appended', id: message.id },
        ),
      );
      return;
    case 'upstream':
      uplink.sendControl(message.frames);
      return;
    case 'last-device-seq':
      post({ type: 'last-device-seq', id: message.id, seq: journal.lastDeviceSeq(message.deviceId, message.epoch) });
      return;
    case 'stats':
      post({ type: 'stats', id: message.id, stats: { journal: { ...journal.stats(), ...commits.stats(), ...tail.stats(), deadLetters: deadLetters.list().length, ...(healed ? { healed: { damage: healed.damage, movedTo: healed.movedTo, salvaged: healed.salvaged, lost: healed.lost } } : {}) }, uplink: uplink.stats() } });
      return;
    case 'close':
      void close(message.id, message.graceMs);
      return;
  }
});

/** Commits what waits, lets the batches in flight be acked (up to the grace period), checkpoints, closes. */
async function close(id: number, graceMs: number): Promise<void> {
  clearInterval(replayTimer);
  clearInterval(maintainTimer);
  commits.close();
  if (graceMs > 0) {
    const drained = await uplink.drain(graceMs);
    commits.flush(); // what the acks freed
    logger.info({ drained, ackedThrough: journal.ackedThrough, lastSeq: journal.lastSeq }, drained ? 'in-flight batches acked' : 'grace period over with batches in flight: they are resent at the next start');
  }
  uplink.close();
  try {
    journal.checkpoint();
  } catch (err: unknown) {
    logger.warn({ err: errorMessage(err) }, 'checkpoint at close failed (the WAL is replayed at the next start)');
  }
  journal.close();
  post({ type: 'closed', id });
  port.close();
}

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
replayDeadLetters();
uplink.start();
post({ type: 'ready', lastSeq: journal.lastSeq, ackedThrough: journal.ackedThrough });
