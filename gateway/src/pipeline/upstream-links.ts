/**
 * The journal thread's upstreams: one uplink each, and the tail cache it reads through (journal/tail-cache.ts),
 * kept in step with the journal here and nowhere else.
 *
 *   commit -> each upstream: its tail cache takes the records routed to it and forgets what the journal let go
 *             of (below the low-water mark, dropped as a gap); its uplink wakes.
 *   ack -> row freed: the uplink settles the Ack against its batches in flight (uplink/inflight-ledger.ts) and
 *             calls released(range) here, which forgets the range in the tail cache (nothing the backend holds
 *             is sent again from memory) and queues the release in the group commit; the next commit frees the
 *             rows, at most intervalMs later, together with the appends waiting (no fsync of its own). A dead
 *             letter takes the same path for its one seq, once the letter is kept.
 *   renumbering -> every tail cache starts over (the seqs changed), and every other uplink's session too (the
 *             seqs of what it has in flight changed).
 */
import { readFileSync } from 'node:fs';
import { ConfigError, errorMessage } from '@fleetgate/core';
import { credentials } from '@grpc/grpc-js';
import type { Logger } from '@fleetgate/common';
import type { Command, CommandAck, UplinkFrame } from '@fleetgate/protos';
import type { DeadLetters } from '../journal/dead-letters.ts';
import type { GroupCommit } from '../journal/group-commit.ts';
import type { CommitResult, Journal, JournalRecord, SeqRange } from '../journal/journal.ts';
import { TailCache } from '../journal/tail-cache.ts';
import { Uplink } from '../uplink/uplink.ts';
import type { PipelineSettings, UpstreamStats } from './pipeline-protocol.ts';

export interface UpstreamLinksOptions {
  settings: PipelineSettings;
  journal: Journal;
  commits: Pick<GroupCommit, 'release'>;
  deadLetters: Pick<DeadLetters, 'add'>;
  logger: Logger;
  onCommand: (command: Command, upstream: string) => void;
  onCommandAck: (ack: CommandAck, upstream: string) => void;
  onReady: (upstream: string) => void;
  /** An upstream's Welcome, saying the last seq it holds (before its session sends anything). */
  onWelcome: (welcomed: Uplink, upstream: string, backendLastSeq: number) => void;
}

/** One upstream: its uplink, and the tail cache it reads the journal through. */
class UpstreamLink {
  readonly tail: TailCache;
  readonly uplink: Uplink;

  constructor(
    private readonly index: number,
    readonly name: string,
    private readonly options: UpstreamLinksOptions,
  ) {
    const { settings, journal, logger } = options;
    const upstream = settings.upstreams[index]!;
    const several = settings.upstreams.length > 1;
    this.tail = new TailCache(
      journal.upstream(index),
      Math.floor(settings.tailCacheBytes / settings.upstreams.length),
      several ? index : undefined,
    );
    const { tokenFile, tls } = upstream;
    this.uplink = new Uplink({
      ...settings.uplink,
      target: upstream.target,
      name,
      gatewayId: settings.gatewayId,
      version: settings.version,
      // Buffers arrive here as plain Uint8Arrays (structured clone); grpc-js wants Buffers.
      ...(tls ? { credentials: credentials.createSsl(asBuffer(tls.ca), asBuffer(tls.key), asBuffer(tls.cert)) } : {}),
      ...(tls?.serverName ? { serverName: tls.serverName } : {}),
      ...(tokenFile ? { getToken: () => readToken(tokenFile) } : {}),
      journal: this.tail,
      onCommand: (command) => options.onCommand(command, name),
      onCommandAck: (ack) => options.onCommandAck(ack, name),
      onReady: () => options.onReady(name),
      onWelcome: (backendLastSeq) => options.onWelcome(this.uplink, name, backendLastSeq),
      onReleased: (range) => this.released(range),
      onDeadLetter: (record, reason) => this.deadLettered(record, reason, several),
      logger,
    });
  }

  /** A commit returned: what it appended (routed), and what the journal let go of. */
  committed(result: CommitResult, ackedThrough: number): void {
    this.tail.add(result.firstSeq, result.stored, result.routes);
    this.tail.release(ackedThrough);
    for (const gap of result.gaps) this.tail.forget(gap);
    this.uplink.wake(result.gaps.length > 0);
  }

  private released(range: SeqRange): void {
    this.tail.forget(range);
    this.options.commits.release({ ...range, upstream: this.index });
  }

  private deadLettered(record: JournalRecord, reason: string, several: boolean): void {
    try {
      this.options.deadLetters.add(record, reason, Date.now(), several ? this.name : '');
    } catch (err: unknown) {
      // Not kept as a letter (a full disk): the row stays in the journal and is offered again after a restart.
      this.options.logger.error(
        { seq: record.seq, err: errorMessage(err) },
        'a rejected record could not be dead-lettered: kept',
      );
      return;
    }
    this.released({ from: record.seq, to: record.seq });
  }
}

export class UpstreamLinks {
  private readonly links: UpstreamLink[];

  constructor(private readonly options: UpstreamLinksOptions) {
    this.links = options.settings.upstreams.map(({ name }, i) => new UpstreamLink(i, name, options));
  }

  /** After every commit. */
  committed(result: CommitResult): void {
    const ackedThrough = this.options.journal.ackedThrough;
    for (const link of this.links) link.committed(result, ackedThrough);
  }

  /** The journal moved its rows (moveAbove) for the upstream that `welcomed`: the others start their sessions over. */
  renumbered(welcomed: Uplink): void {
    for (const { tail, uplink } of this.links) {
      tail.clear();
      if (uplink !== welcomed) uplink.restart('the journal was renumbered');
    }
  }

  /** Frames for the upstream `to` (every upstream if absent). */
  sendControl(frames: UplinkFrame[], to?: string): void {
    for (const { name, uplink } of this.links) if (to === undefined || to === name) uplink.sendControl(frames);
  }

  start(): void {
    for (const { uplink } of this.links) uplink.start();
  }

  /** Resolves once no upstream has a batch in flight (true), or after graceMs (false). */
  async drain(graceMs: number): Promise<boolean> {
    return (await Promise.all(this.links.map(({ uplink }) => uplink.drain(graceMs)))).every(Boolean);
  }

  close(): void {
    for (const { uplink } of this.links) uplink.close();
  }

  /** Each upstream's session and counters, and what the journal still holds for it, in configuration order. */
  stats(now = Date.now()): UpstreamStats[] {
    return this.links.map(({ name, uplink }, i) => {
      const backlog = this.options.journal.backlogOf(i);
      return {
        name,
        ...uplink.stats(),
        pendingRows: backlog.rows,
        pendingBytes: backlog.payloadBytes,
        oldestPendingAgeMs: backlog.oldestTimeMs === null ? null : Math.max(0, now - backlog.oldestTimeMs),
      };
    });
  }

  /** The tail caches together. */
  tailStats(): ReturnType<TailCache['stats']> {
    const total = { cachedRecords: 0, cachedBytes: 0, hits: 0, misses: 0 };
    for (const { tail } of this.links) {
      const t = tail.stats();
      total.cachedRecords += t.cachedRecords;
      total.cachedBytes += t.cachedBytes;
      total.hits += t.hits;
      total.misses += t.misses;
    }
    return total;
  }
}

function asBuffer(bytes: Uint8Array | undefined): Buffer | null {
  return bytes ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) : null;
}

/** The gateway's token, from its file; the file may be replaced at any time (token rotation). */
function readToken(file: string): string {
  const token = readFileSync(file, 'utf8').trim();
  if (token === '') throw new ConfigError('--token-file', `${file} is empty`);
  return token;
}
