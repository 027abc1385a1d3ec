/**
 * The journal thread: owns the journal, its group commit, the dead letters and the uplinks, so that a commit's
 * fsync or a batch's encoding never holds up the MQTT thread. It answers the MQTT thread (pipeline.ts) over
 * the worker RPC on the port it is given: the worker's parentPort (journal-thread-entry.ts), or one end of a
 * MessageChannel in a test.
 *
 * A message's path through it, as named steps:
 *   append(packed)           one transferred buffer per event-loop turn of the MQTT thread
 *   -> unpackRecords         packed-records.ts: payloads are views into that buffer
 *   -> route                 uplink/router.ts: which upstreams each record goes to, decided before the commit
 *   -> GroupCommit.append    journal/group-commit.ts: one transaction every intervalMs or maxRows
 *   -> Journal.commit        journal/sqlite/: dedupe, insert with the routes' bits, frees, limits, COMMIT
 *   -> the append's answer   durable (the MQTT thread writes the PUBACKs), or refused (JournalFullError)
 *   -> UpstreamLinks         upstream-links.ts: each tail cache takes what was routed to it, each uplink wakes
 * and back, an Ack frees its rows by the path upstream-links.ts describes.
 */
import { createLogger, RpcServer, type Logger, type RpcPort } from '@fleetgate/common';
import { errorMessage } from '@fleetgate/core';
import { DeadLetters, type Replay } from '../journal/dead-letters.ts';
import { GroupCommit } from '../journal/group-commit.ts';
import { openJournal, type HealReport } from '../journal/sqlite/heal.ts';
import type { Journal, NewRecord } from '../journal/journal.ts';
import { Router } from '../uplink/router.ts';
import type { Uplink } from '../uplink/uplink.ts';
import { unpackRecords, type PackedRecords } from './packed-records.ts';
import { PipelineError } from '../errors.ts';
import type { JournalThreadEvents, JournalThreadMethods, PipelineSettings, PipelineStats } from './pipeline-protocol.ts';
import { UpstreamLinks } from './upstream-links.ts';

/** How often letters marked for replay (by `fleetgate deadletter replay`) are picked up. */
const REPLAY_POLL_MS = 5000;
/** How often free space is given back while no commit comes to do it. */
const MAINTAIN_EVERY_MS = 1000;

export interface JournalThreadOptions {
  /** Its own logger, at settings.logLevel, if absent (a worker cannot share its parent's logger object). */
  logger?: Logger;
}

export class JournalThread {
  private readonly logger: Logger;
  private readonly server: RpcServer<JournalThreadMethods, JournalThreadEvents>;
  private readonly deadLetters: DeadLetters;
  /** With several upstreams: which each record goes to. With one, every record goes to it. */
  private readonly router: Router | undefined;
  private readonly commits: GroupCommit;
  private readonly links: UpstreamLinks;
  private readonly timers: NodeJS.Timeout[] = [];
  private lastFailureLog = 0;

  /**
   * Opens the journal (healing it if it is damaged) and starts the uplinks, answering on `port`. If the journal
   * cannot be opened, the other side hears why (the RPC's fatal) and this throws.
   */
  static open(settings: PipelineSettings, port: RpcPort, options: JournalThreadOptions = {}): JournalThread {
    const server = new RpcServer<JournalThreadMethods, JournalThreadEvents>(port, {
      append: (records) => thread.append(records),
      lastDeviceSeq: (deviceId, epoch) => thread.journal.lastDeviceSeq(deviceId, epoch),
      stats: () => thread.stats(),
      sendUpstream: (frames, to) => thread.links.sendControl(frames, to),
      close: (graceMs) => thread.close(graceMs),
    });
    const logger = options.logger ?? createLogger({ name: 'gateway', level: settings.logLevel }).child({ thread: 'journal' });
    const names = settings.upstreams.map((upstream) => upstream.name);
    let opened: ReturnType<typeof openJournal>;
    try {
      opened = openJournal({
        dir: settings.dataDir,
        durability: settings.durability,
        limits: settings.limits,
        ...(settings.maxFileBytes ? { maxFileBytes: settings.maxFileBytes } : {}),
        upstreams: names,
        forgetUpstreams: settings.forgetUpstreams,
      });
    } catch (err: unknown) {
      server.fatal(new PipelineError(`cannot open the journal in ${settings.dataDir}: ${errorMessage(err)}`, { cause: err }));
      throw err;
    }
    const thread: JournalThread = new JournalThread(settings, server, logger, opened.journal, opened.healed);
    return thread;
  }

  private constructor(
    settings: PipelineSettings,
    server: RpcServer<JournalThreadMethods, JournalThreadEvents>,
    logger: Logger,
    private readonly journal: Journal,
    private readonly healed: HealReport | undefined,
  ) {
    this.server = server;
    this.logger = logger;
    if (healed) {
      const { damage, movedTo, salvaged, lost, gaps } = healed;
      logger.error(
        { damage, movedTo, salvaged, lost, gaps: gaps.length },
        'the journal was damaged: readable rows salvaged into a fresh journal, the rest reported upstream as gaps',
      );
    }
    this.deadLetters = new DeadLetters(journal.deadLetters);
    const names = settings.upstreams.map((upstream) => upstream.name);
    this.router = names.length > 1 ? new Router(names, settings.routes) : undefined;
    this.commits = new GroupCommit({
      ...settings.groupCommit,
      journal,
      rejectWhenFull: settings.limits.policy === 'reject-new' && settings.limits.maxBytes > 0,
      onCommitted: (result) => {
        this.links.committed(result);
        if (result.gaps.length > 0) logger.warn({ gaps: result.gaps }, 'records dropped by the journal limits: reported as gaps');
      },
      onFailed: (err) => {
        // A broken disk fails every commit; one line a second is enough to say so.
        if (Date.now() - this.lastFailureLog < 1000) return;
        this.lastFailureLog = Date.now();
        logger.error({ err: errorMessage(err), failedCommits: this.commits.stats().failedCommits }, 'journal commit failed');
      },
      onDiskFull: (full) =>
        full
          ? logger.error('the disk is full: appends are refused (devices keep their data) until space returns')
          : logger.warn('the disk takes writes again: appends resume'),
    });
    this.links = new UpstreamLinks({
      settings,
      journal,
      commits: this.commits,
      deadLetters: this.deadLetters,
      logger,
      onCommand: (command, upstream) => server.emit('command', command, upstream),
      onCommandAck: (ack, upstream) => server.emit('commandAck', ack, upstream),
      onReady: (upstream) => server.emit('uplinkReady', upstream),
      onWelcome: (welcomed, upstream, backendLastSeq) => this.onWelcome(welcomed, upstream, backendLastSeq),
    });

    this.timers.push(setInterval(() => this.replayDeadLetters(), REPLAY_POLL_MS));
    // Space freed by acks goes back to the file system a step at a time, also when no commit comes to do it.
    this.timers.push(setInterval(() => this.maintain(), MAINTAIN_EVERY_MS));
    for (const timer of this.timers) timer.unref();

    logger.info(
      { file: journal.location, lastSeq: journal.lastSeq, ackedThrough: journal.ackedThrough, rows: journal.stats().rows },
      'journal open',
    );
    this.replayDeadLetters();
    this.links.start();
    server.emit('ready', { lastSeq: journal.lastSeq, ackedThrough: journal.ackedThrough });
  }

  /** Resolves once the records are durable; rejects as the commit did (JournalFullError when full). */
  private append(packed: PackedRecords): Promise<void> {
    const records = unpackRecords(packed);
    return new Promise((resolve, reject) =>
      this.commits.append(records, (err) => (err ? reject(err) : resolve()), this.route(records)),
    );
  }

  /** The upstreams of each record (a replayed dead letter names those that refused it); none needed with one upstream. */
  private route(records: ReadonlyArray<NewRecord | Replay>): number[] | undefined {
    const router = this.router;
    return router && records.map((record) => router.route(record));
  }

  /**
   * An upstream's Welcome, saying the last seq it holds. A journal it has never seen, while it holds seqs of this
   * gateway: the data folder was lost (or is new on a replaced machine). So is an upstream ahead of the journal
   * (restored from an old copy). Either way the unacked rows move above its seqs, or it would take them for
   * resends; the other upstreams' sessions start over, as the seqs of what they have in flight changed.
   */
  private onWelcome(welcomed: Uplink, upstream: string, backendLastSeq: number): void {
    const journal = this.journal;
    const fresh = !journal.welcomed && backendLastSeq > 0;
    if (fresh || backendLastSeq > journal.lastSeq) {
      this.commits.flush(); // releases waiting to be committed are in the old numbering
      const journalLastSeq = journal.lastSeq;
      const moved = journal.moveAbove(backendLastSeq);
      this.links.renumbered(welcomed);
      this.logger.error(
        {
          upstream,
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

  private stats(): PipelineStats {
    const healed = this.healed;
    return {
      journal: {
        ...this.journal.stats(),
        ...this.commits.stats(),
        ...this.links.tailStats(),
        deadLetters: this.deadLetters.list().length,
        ...(healed
          ? { healed: { damage: healed.damage, movedTo: healed.movedTo, salvaged: healed.salvaged, lost: healed.lost } }
          : {}),
      },
      upstreams: this.links.stats(),
    };
  }

  /** Re-appends the dead letters marked for replay, as new records. */
  private replayDeadLetters(): void {
    let replays: ReturnType<DeadLetters['takeReplays']>;
    try {
      replays = this.deadLetters.takeReplays(Date.now());
    } catch (err: unknown) {
      return this.logger.error({ err: errorMessage(err) }, 'dead letters marked for replay could not be read');
    }
    const { records, done } = replays;
    if (records.length === 0) return;
    this.commits.append(
      records,
      (err) => {
        if (err) return this.logger.error({ err: err.message }, 'dead letters not replayed: they stay marked');
        try {
          done();
        } catch (doneErr: unknown) {
          // Replayed, but still marked (a full disk): the next poll would replay them again; say so.
          return this.logger.error({ err: errorMessage(doneErr) }, 'dead letters replayed but not unmarked');
        }
        this.logger.info({ records: records.length }, 'dead letters replayed as new records');
      },
      this.route(records),
    );
  }

  private maintain(): void {
    try {
      this.journal.maintain();
    } catch (err: unknown) {
      this.logger.warn({ err: errorMessage(err) }, 'journal maintenance failed (retried in a second)');
    }
  }

  /** Commits what waits, lets the batches in flight be acked (up to the grace period), checkpoints, closes. */
  private async close(graceMs: number): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    this.commits.close();
    if (graceMs > 0) {
      const drained = await this.links.drain(graceMs);
      this.commits.flush(); // what the acks freed
      this.logger.info(
        { drained, ackedThrough: this.journal.ackedThrough, lastSeq: this.journal.lastSeq },
        drained ? 'in-flight batches acked' : 'grace period over with batches in flight: they are resent at the next start',
      );
    }
    this.links.close();
    try {
      this.journal.checkpoint();
    } catch (err: unknown) {
      this.logger.warn({ err: errorMessage(err) }, 'checkpoint at close failed (the WAL is replayed at the next start)');
    }
    this.journal.close();
    // The answer to this call is the last message: then the port closes, and the thread can end.
    this.server.close();
  }
}
