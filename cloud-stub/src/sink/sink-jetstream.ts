/**
 * The JetStream sink: records go to a replicated NATS JetStream stream, so several cloud-stub replicas can run
 * side by side, stateless; any replica can take any gateway's stream.
 *
 * Layout (names in sink-jetstream-names.ts, message format in sink-jetstream-codec.ts, created and checked in
 * sink-jetstream-setup.ts), for stream FLEETGATE:
 *
 *   stream FLEETGATE, file storage, R3 on a cluster of 3 or more (R1 otherwise), limits retention, nothing expires
 *     fleetgate.rec.<gatewayId>.<deviceId>   one message per record: headers + payload bytes
 *     fleetgate.gap.<gatewayId>              one message per gap a gateway reported: JSON
 *   KV bucket fleetgate-seqs (stream KV_fleetgate-seqs, same replicas, history 1, leader reads)
 *     <gatewayId> -> {"lastSeq": N, "duplicates": M}
 *
 * Dedupe: each record is published with `Nats-Msg-Id: <gatewayId>:<seq>`; the stream drops a message whose id it
 * saw within its duplicate window (default 2 min) and says so in the PubAck (`duplicate`). A resend that comes
 * later than the window is stored a second time: the window is the bound of exactly-once here. Within one commit
 * a (gatewayId, seq) met twice is published once.
 *
 * Durability: a commit resolves once every record has its PubAck, which JetStream sends once the stream stored
 * the message (for R3: on a quorum, 2 of 3). Records of a commit are published without waiting for each other
 * (sink-jetstream-publisher.ts: pipelined on one connection, whose messages are stored in the order sent), at most
 * `maxInFlight` at a time. A commit fails when a PubAck says an error or no responders (no stream leader, e.g.
 * during an election), when no PubAck came for `publishTimeoutMs` (no quorum), or when the connection drops;
 * it is then not acked to the gateway, which resends, and the msg id dedupes. Unlike SQLite a failed commit may
 * have stored part of its records (JetStream 2.9 has no multi-message transaction): they come back as duplicates
 * on the resend. Records that cannot be stored at all are refused before anything is published.
 *
 * lastSeq (sink-jetstream-seqs.ts): seqs of a gateway are not committed in increasing order (live data before
 * backlog), so the highest is kept in the KV bucket, raised with compare-and-set on the entry's revision after the commit's PubAcks (a
 * conflict, another replica writing, means read again and retry). A replica raises one gateway's entry one
 * commit at a time: nats-server before 2.9.21 checks the expected revision of a clustered stream before the
 * write's consensus, not in it (nats-server#4320), so two writes based on the same revision can both be taken and
 * the lower one may land last. Serialized here, that can happen only when two replicas write one gateway's entry
 * at the same moment (a failover overlap); the cost then is a lastSeq below the true one, which makes no gateway
 * renumber anything. Read from the KV leader, so a replica that never saw the gateway reads what the others wrote. The same entry keeps the gateway's count of duplicates, so
 * stats are the same whichever replica, or `fleetgate cloud export`, asks.
 *
 * Reading back (sink-jetstream-read.ts): the export and the held count of a gap through pull consumers; gaps
 * by leader gets (`next_by_subj`); stats from per-subject counts in stream info with a `subjects_filter`. All of it
 * works on nats-server 2.9.
 */
import { type Clock, ConfigError, errorMessage, systemClock } from '@fleetgate/core';
import { connect, type JetStreamClient, type JetStreamManager, type NatsConnection } from 'nats';
import { InvalidGapError, JetStreamStoreError, SinkClosedError } from '../errors.ts';
import { checkBatches, decodeGap, decodeRecord, encodeGap, recordHeaders, recordSeq } from './sink-jetstream-codec.ts';
import {
  DEFAULT_STREAM,
  gapMsgId,
  gapSubject,
  gatewayRecordsFilter,
  jetStreamNames,
  parseSubject,
  recordMsgId,
  recordSubject,
  type JetStreamNames,
} from './sink-jetstream-names.ts';
import { JetStreamPublisher, type Publication } from './sink-jetstream-publisher.ts';
import { readByGet, readPulled } from './sink-jetstream-read.ts';
import { GatewaySeqs } from './sink-jetstream-seqs.ts';
import { checkReplicas, DEFAULT_DUPLICATE_WINDOW_MS, openStorage, positive } from './sink-jetstream-setup.ts';
import type { ExportedGap, ExportedRecord, GatewayStats, Sink, SinkBatch, SinkGap, SinkOutcome, SinkStats } from './sink.ts';

export interface JetStreamSinkOptions {
  /** NATS URLs of the cluster (any subset: the rest is learned from the servers). */
  servers: readonly string[];
  /** Stream name; the subject prefix and the KV bucket derive from it. Default FLEETGATE. */
  stream?: string;
  /**
   * Replicas of the stream and the KV bucket when they are created (1-5). Default: 3 when the server is part of
   * a cluster of 3 or more servers (the servers it advertises, or the URLs given), else 1. Given explicitly, an
   * existing stream and bucket are scaled to it; left out, they keep what they have.
   */
  replicas?: number;
  /** JetStream's duplicate window: how long a resend is recognised. Default 2 min (JetStream's own default). */
  duplicateWindowMs?: number;
  /** Connection name, as the servers log it. Default fleetgate-cloud-stub. */
  name?: string;
  /** How long a publish waits for its PubAck (and a JetStream API call for its answer). Default 5 s. */
  publishTimeoutMs?: number;
  /** Publishes awaiting their PubAck at once, over all commits; more wait for a slot. Default 2048. */
  maxInFlight?: number;
  clock?: Clock;
}

const DEFAULT_TIMEOUT_MS = 5_000;
const DEFAULT_MAX_IN_FLIGHT = 2048;

export class JetStreamSink implements Sink {
  private readonly publisher: JetStreamPublisher;
  private closing: Promise<void> | undefined;

  private constructor(
    readonly names: JetStreamNames,
    /** Replicas the stream has (what it was created with, or scaled to). */
    readonly replicas: number,
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly js: JetStreamClient,
    private readonly seqs: GatewaySeqs,
    private readonly timeoutMs: number,
    maxInFlight: number,
    private readonly clock: Clock,
  ) {
    this.publisher = new JetStreamPublisher(nc, timeoutMs, maxInFlight);
  }

  /** Connects, creates the stream and the KV bucket if missing (or checks and updates them), and returns the sink. */
  static async open(options: JetStreamSinkOptions): Promise<JetStreamSink> {
    const { servers, name = 'fleetgate-cloud-stub', clock = systemClock } = options;
    const timeoutMs = positive('publishTimeoutMs', options.publishTimeoutMs ?? DEFAULT_TIMEOUT_MS);
    const maxInFlight = positive('maxInFlight', options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT);
    const duplicateWindowMs = positive('duplicateWindowMs', options.duplicateWindowMs ?? DEFAULT_DUPLICATE_WINDOW_MS);
    const replicas = checkReplicas(options.replicas);
    if (servers.length === 0) throw new ConfigError('servers', 'at least one NATS URL is needed');
    const names = jetStreamNames(options.stream ?? DEFAULT_STREAM);

    // Reconnects forever, quickly: a replica that lost its server must find another. A commit under way when the
    // connection drops fails at once; one started while disconnected waits in nats.js's buffer and fails at the
    // PubAck timeout if no server takes it in time.
    const nc = await connect({
      servers: [...servers],
      name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      timeout: timeoutMs,
      pingInterval: 10_000,
    });
    try {
      const jsm = await nc.jetstreamManager({ timeout: timeoutMs });
      const js = nc.jetstream({ timeout: timeoutMs });
      const storage = await openStorage(nc, jsm, js, names, servers.length, {
        replicas,
        duplicateWindowMs: options.duplicateWindowMs !== undefined ? duplicateWindowMs : undefined,
        timeoutMs,
      });
      const seqs = new GatewaySeqs(storage.kv, jsm, names.kvBucket);
      return new JetStreamSink(names, storage.replicas, nc, jsm, js, seqs, timeoutMs, maxInFlight, clock);
    } catch (err: unknown) {
      await nc.close();
      throw err;
    }
  }

  async commit(batches: readonly SinkBatch[]): Promise<SinkOutcome[]> {
    this.checkOpen();
    checkBatches(batches);
    const receivedTime = this.clock.now();
    const outcomes = batches.map(() => ({ inserted: 0, duplicates: 0 }));
    // One publication per (gatewayId, seq): met again in the same commit, it is a duplicate without asking.
    const seen = new Set<string>();
    const publications: Publication[] = [];
    const batchOf: number[] = [];
    batches.forEach(({ gatewayId, records }, i) => {
      for (const r of records) {
        const id = recordMsgId(gatewayId, r.seq);
        if (seen.has(id)) {
          outcomes[i]!.duplicates++;
          continue;
        }
        seen.add(id);
        publications.push({
          subject: recordSubject(this.names.prefix, gatewayId, r.deviceId),
          data: r.payload,
          headers: recordHeaders(gatewayId, r, receivedTime),
        });
        batchOf.push(i);
      }
    });
    let duplicate: Uint8Array;
    try {
      duplicate = await this.publisher.publish(publications);
    } catch (err: unknown) {
      throw new JetStreamStoreError(`JetStream did not store the commit: ${errorMessage(err)}`, { cause: err });
    }
    batchOf.forEach((i, k) => (duplicate[k] ? outcomes[i]!.duplicates++ : outcomes[i]!.inserted++));

    const perGateway = new Map<string, { maxSeq: number; duplicates: number }>();
    batches.forEach(({ gatewayId, records }, i) => {
      if (records.length === 0) return;
      const g = perGateway.get(gatewayId) ?? { maxSeq: 0, duplicates: 0 };
      for (const r of records) if (r.seq > g.maxSeq) g.maxSeq = r.seq;
      g.duplicates += outcomes[i]!.duplicates;
      perGateway.set(gatewayId, g);
    });
    await Promise.all([...perGateway].map(([gatewayId, g]) => this.seqs.raise(gatewayId, g.maxSeq, g.duplicates)));
    return outcomes;
  }

  async recordGap(gatewayId: string, gap: SinkGap): Promise<void> {
    this.checkOpen();
    for (const field of ['fromSeq', 'toSeq', 'count', 'timeMs'] as const) {
      if (!Number.isSafeInteger(gap[field])) throw new InvalidGapError(`gap of ${gatewayId}: ${field} must be an integer`);
    }
    // A repeat of a gap is ignored, also after the duplicate window: the gateway's gaps are few, read them.
    for await (const m of readByGet(this.jsm, this.names.stream, gapSubject(this.names.prefix, gatewayId))) {
      if (decodeGap(m).fromSeq === gap.fromSeq) return;
    }
    // A gateway that cannot tell exactly what it lost (a damaged journal) reports a wider range: what the stream
    // holds from that range was not lost. Counted by reading the seqs of the gateway's records (headers only),
    // unless the range starts above the highest seq held.
    let held = 0;
    if (gap.fromSeq <= (await this.lastSeq(gatewayId))) {
      const seqs = new Set<number>();
      for await (const m of readPulled(this.nc, this.jsm, this.names.stream, gatewayRecordsFilter(this.names.prefix, gatewayId), {
        headersOnly: true,
      })) {
        const seq = recordSeq(m);
        if (seq >= gap.fromSeq && seq <= gap.toSeq) seqs.add(seq);
      }
      held = seqs.size;
    }
    const lost = Math.max(0, Math.min(gap.count, gap.toSeq - gap.fromSeq + 1 - held));
    const data = encodeGap({
      fromSeq: gap.fromSeq,
      toSeq: gap.toSeq,
      reason: gap.reason,
      count: lost,
      time: gap.timeMs,
      receivedTime: this.clock.now(),
    });
    try {
      await this.js.publish(gapSubject(this.names.prefix, gatewayId), data, {
        msgID: gapMsgId(gatewayId, gap.fromSeq),
        timeout: this.timeoutMs,
      });
    } catch (err: unknown) {
      throw new JetStreamStoreError(`JetStream did not store the gap: ${errorMessage(err)}`, { cause: err });
    }
  }

  /** Read from the KV bucket's leader every time: another replica may have raised it since. */
  async lastSeq(gatewayId: string): Promise<number> {
    this.checkOpen();
    return (await this.seqs.read(gatewayId)).lastSeq;
  }

  async stats(): Promise<SinkStats> {
    this.checkOpen();
    const [info, entries, gaps] = await Promise.all([
      this.jsm.streams.info(this.names.stream, { subjects_filter: this.names.records }),
      this.seqs.readAll(),
      this.exportGaps(),
    ]);
    const gateways = new Map<string, GatewayStats>();
    const gateway = (id: string) => gateways.get(id) ?? gateways.set(id, { lastSeq: 0, records: 0, duplicates: 0 }).get(id)!;
    const devices = new Map<string, number>();
    let records = 0;
    let duplicates = 0;
    for (const [subject, count] of Object.entries(info.state.subjects ?? {})) {
      const where = parseSubject(subject);
      if (where.kind !== 'rec') continue;
      gateway(where.gatewayId).records += count;
      devices.set(where.deviceId, (devices.get(where.deviceId) ?? 0) + count);
      records += count;
    }
    for (const [id, entry] of entries) {
      const g = gateway(id);
      g.lastSeq = entry.lastSeq;
      g.duplicates = entry.duplicates;
      duplicates += entry.duplicates;
    }
    return {
      records,
      duplicates,
      gaps: gaps.length,
      recordsLostInGaps: gaps.reduce((sum, g) => sum + g.count, 0),
      gateways: Object.fromEntries([...gateways].sort(([a], [b]) => compare(a, b))),
      devices: Object.fromEntries([...devices].sort(([a], [b]) => compare(a, b))),
    };
  }

  /** Read back from the stream, in stream (= commit) order, through a consumer of its own. */
  async *exportRecords(): AsyncIterable<ExportedRecord> {
    this.checkOpen();
    for await (const m of readPulled(this.nc, this.jsm, this.names.stream, this.names.records)) yield decodeRecord(m);
  }

  async exportGaps(): Promise<ExportedGap[]> {
    this.checkOpen();
    const gaps: ExportedGap[] = [];
    for await (const m of readByGet(this.jsm, this.names.stream, this.names.gaps)) gaps.push(decodeGap(m));
    return gaps;
  }

  /** Drains the connection (what is queued goes out, subscriptions end); closes it outright if that hangs. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.publisher.close();
      const drained = this.nc.drain().catch(() => undefined);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([drained, new Promise((resolve) => (timer = setTimeout(resolve, this.timeoutMs)))]);
      clearTimeout(timer);
      if (!this.nc.isClosed()) await this.nc.close();
    })();
    return this.closing;
  }

  private checkOpen(): void {
    if (this.closing) throw new SinkClosedError('JetStream sink closed');
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
