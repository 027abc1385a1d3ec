/**
 * The journal thread: owns the SQLite journal, its group commit, the dead letters and the uplinks, so that a
 * commit's fsync or a batch's encoding never holds up the MQTT thread. It receives packed records, commits
 * them (routing each to its upstreams), says which append is durable (or refused, when the journal or the disk
 * is full), and streams the journal to each upstream, freeing a row once every upstream it went to acknowledged it.
 */
import { readFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { credentials } from '@grpc/grpc-js';
import { errorMessage } from '@fleetgate/core';
import { createLogger } from '@fleetgate/common';
import { DeadLetters } from '../journal/dead-letters.ts';
import { GroupCommit } from '../journal/group-commit.ts';
import { JournalFullError } from '../journal/journal.ts';
import { openJournal, type HealReport } from '../journal/heal.ts';
import type { SqliteJournal } from '../journal/journal-sqlite.ts';
import { TailCache } from '../journal/tail-cache.ts';
import { Router } from '../uplink/router.ts';
import { Uplink, type UplinkJournal } from '../uplink/uplink.ts';
import { unpackRecords } from './packed-records.ts';
import type { FromWorker, PipelineSettings, ToWorker } from './pipeline-protocol.ts';

const port = parentPort!;
const settings = (workerData as { data: PipelineSettings }).data;
const logger = createLogger({ name: 'gateway', level: settings.logLevel }).child({ thread: 'journal' });
const post = (message: FromWorker) => port.postMessage(message);
/** How often letters marked for replay (by `fleetgate deadletter replay`) are picked up. */
const REPLAY_POLL_MS = 5000;

const names = settings.upstreams.map((upstream) => upstream.name);
const router = new Router(names, settings.routes);
let journal: SqliteJournal;
let healed: HealReport | undefined;
try {
  ({ journal, healed } = openJournal({
    dir: settings.dataDir,
    durability: settings.durability,
    limits: settings.limits,
    ...(settings.maxFileBytes ? { maxFileBytes: settings.maxFileBytes } : {}),
    upstreams: names,
    forgetUpstreams: settings.forgetUpstreams,
    // A replayed dead letter (dead-letters.ts Replay) carries the upstreams that refused it.
    route: (record) => router.route(record),
  }));
} catch (err: unknown) {
  post({ type: 'fatal', error: `cannot open the journal in ${settings.dataDir}: ${errorMessage(err)}` });
  throw err;
}
if (healed) {
  const { damage, movedTo, salvaged, lost, gaps } = healed;
  logger.error(
    { damage, movedTo, salvaged, lost, gaps: gaps.length },
    'the journal was damaged: readable rows salvaged into a fresh journal, the rest reported upstream as gaps',
  );
}
const deadLetters = new DeadLetters(journal.db);

let lastFailureLog = 0;
const commits = new GroupCommit({
  ...settings.groupCommit,
  journal,
  rejectWhenFull: settings.limits.policy === 'reject-new' && settings.limits.maxBytes > 0,
  onCommitted: (result) => {
    for (const { tail, uplink } of upstreams) {
      tail.add(result.firstSeq, result.stored, result.routes);
      tail.release(journal.ackedThrough);
      for (const gap of result.gaps) tail.forget(gap);
      uplink.wake(result.gaps.length > 0);
    }
    if (result.gaps.length > 0) logger.warn({ gaps: result.gaps }, 'records dropped by the journal limits: reported as gaps');
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

/**
 * One uplink per upstream. With one upstream it reads the journal as it is; with several, each reads only the
 * rows routed to it that it has not acknowledged (its own cursor), through a tail cache of its own.
 */
const several = settings.upstreams.length > 1;
const upstreams = settings.upstreams.map((upstream, i) => {
  const view: UplinkJournal = several
    ? {
        readAfter: (afterSeq, maxRecords, maxBytes, throughSeq) =>
          journal.readAfter(afterSeq, maxRecords, maxBytes, throughSeq, i),
        get ackedThrough() {
          return journal.backlogOf(i).ackedThrough;
        },
        get lastSeq() {
          return journal.lastSeq;
        },
        gaps: () => journal.gaps(i),
      }
    : journal;
  const tail = new TailCache(view, Math.floor(settings.tailCacheBytes / settings.upstreams.length), several ? i : undefined);
  const { tokenFile, tls } = upstream;
  const uplink: Uplink = new Uplink({
    ...settings.uplink,
    target: upstream.target,
    name: upstream.name,
    gatewayId: settings.gatewayId,
    version: settings.version,
    // Buffers arrive here as plain Uint8Arrays (structured clone); grpc-js wants Buffers.
    ...(tls ? { credentials: credentials.createSsl(asBuffer(tls.ca), asBuffer(tls.key), asBuffer(tls.cert)) } : {}),
    ...(tls?.serverName ? { serverName: tls.serverName } : {}),
    ...(tokenFile ? { getToken: () => readToken(tokenFile) } : {}),
    journal: tail,
    onCommand: (command) => post({ type: 'command', command, upstream: upstream.name }),
    onCommandAck: (ack) => post({ type: 'command-ack', ack, upstream: upstream.name }),
    onReady: () => post({ type: 'uplink-ready', upstream: upstream.name }),
    onWelcome: (backendLastSeq) => onWelcome(uplink, upstream.name, backendLastSeq),
    onReleased: (range) => {
      tail.forget(range);
      commits.release({ ...range, upstream: i });
    },
    onDeadLetter: (record, reason) => {
      deadLetters.add(record, reason, Date.now(), several ? upstream.name : '');
      const range = { from: record.seq, to: record.seq };
      tail.forget(range);
      commits.release({ ...range, upstream: i });
    },
    logger,
  });
  return { name: upstream.name, tail, uplink };
});

/**
 * An upstream's Welcome, saying the last seq it holds. A journal it has never seen, while it holds seqs of this
 * gateway: the data folder was lost (or is new on a replaced machine). So is an upstream ahead of the journal
 * (restored from an old copy). Either way the unacked rows move above its seqs, or it would take them for
 * resends; the other upstreams' sessions start over, as the seqs of what they have in flight changed.
 */
function onWelcome(welcomed: Uplink, name: string, backendLastSeq: number): void {
  const fresh = !journal.welcomed && backendLastSeq > 0;
  if (fresh || backendLastSeq > journal.lastSeq) {
    commits.flush(); // releases waiting to be committed are in the old numbering
    const journalLastSeq = journal.lastSeq;
    const moved = journal.moveAbove(backendLastSeq);
    for (const { tail, uplink } of upstreams) {
      tail.clear();
      if (uplink !== welcomed) uplink.restart('the journal was renumbered');
    }
    logger.error(
      {
        upstream: name,
        backendLastSeq,
        journalLastSeq,
        moved,
        reason: fresh ? 'a journal the backend has not seen' : 'the backend is ahead of the journal',
      },
      'the backend holds seqs of this gateway that this journal did not give out (data folder lost or restored?): unsent records renumbered above them',
    );
  }
  journal.markWelcomed();
}

function upstreamStats() {
  const now = Date.now();
  return upstreams.map(({ name, uplink }, i) => {
    const backlog = journal.backlogOf(i);
    return {
      name,
      ...uplink.stats(),
      pendingRows: backlog.rows,
      pendingBytes: backlog.payloadBytes,
      oldestPendingAgeMs: backlog.oldestTimeMs === null ? null : Math.max(0, now - backlog.oldestTimeMs),
    };
  });
}

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
      for (const { name, uplink } of upstreams)
        if (message.to === undefined || message.to === name) uplink.sendControl(message.frames);
      return;
    case 'last-device-seq':
      post({ type: 'last-device-seq', id: message.id, seq: journal.lastDeviceSeq(message.deviceId, message.epoch) });
      return;
    case 'stats':
      post({
        type: 'stats',
        id: message.id,
        stats: {
          journal: {
            ...journal.stats(),
            ...commits.stats(),
            ...tailStats(),
            deadLetters: deadLetters.list().length,
            ...(healed
              ? { healed: { damage: healed.damage, movedTo: healed.movedTo, salvaged: healed.salvaged, lost: healed.lost } }
              : {}),
          },
          upstreams: upstreamStats(),
        },
      });
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
    const drained = (await Promise.all(upstreams.map(({ uplink }) => uplink.drain(graceMs)))).every(Boolean);
    commits.flush(); // what the acks freed
    logger.info(
      { drained, ackedThrough: journal.ackedThrough, lastSeq: journal.lastSeq },
      drained ? 'in-flight batches acked' : 'grace period over with batches in flight: they are resent at the next start',
    );
  }
  for (const { uplink } of upstreams) uplink.close();
  try {
    journal.checkpoint();
  } catch (err: unknown) {
    logger.warn({ err: errorMessage(err) }, 'checkpoint at close failed (the WAL is replayed at the next start)');
  }
  journal.close();
  post({ type: 'closed', id });
  port.close();
}

/** The tail caches together. */
function tailStats(): ReturnType<TailCache['stats']> {
  const total = { cachedRecords: 0, cachedBytes: 0, hits: 0, misses: 0 };
  for (const { tail } of upstreams) {
    const t = tail.stats();
    total.cachedRecords += t.cachedRecords;
    total.cachedBytes += t.cachedBytes;
    total.hits += t.hits;
    total.misses += t.misses;
  }
  return total;
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

logger.info(
  { file: journal.file, lastSeq: journal.lastSeq, ackedThrough: journal.ackedThrough, rows: journal.stats().rows },
  'journal open',
);
replayDeadLetters();
for (const { uplink } of upstreams) uplink.start();
post({ type: 'ready', lastSeq: journal.lastSeq, ackedThrough: journal.ackedThrough });
