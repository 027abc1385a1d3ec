/**
 * Reading the JetStream sink's stream back, two ways, both in stream order:
 *
 * - readPulled: an ephemeral pull consumer of our own (R1, memory, no acks), pulled 1000 messages at a time with
 *   `no_wait`; ~40-50k records/s here. For the export and for scans of one gateway's records. When a pull brings
 *   nothing before the end (its node died, the consumer is gone), a new consumer starts after the last message
 *   read; no progress for `stallMs` fails the read.
 * - readByGet: one STREAM.MSG.GET per message with `next_by_subj` (the first message at or after a sequence on a
 *   filter), answered by the stream leader: ~2k/s, but no consumer. For the few gap messages, on the ingest path
 *   (recordGap), and to find where a read starts.
 *
 * Why not nats.js's ordered consumer: on nats-server 2.9, creating a consumer shortly after a node died can time
 * out (the meta leader may place it on the dead node; about 1 try in 3 in our kill tests), and nats.js 2.29's
 * ordered consumer then let the timeout escape as an uncaught error, or kept retrying for minutes. Here each try
 * is bounded and the next one is ours to decide.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage } from '@fleetgate/core';
import {
  AckPolicy,
  createInbox,
  DeliverPolicy,
  nanos,
  nuid,
  type JetStreamManager,
  type Msg,
  type MsgHdrs,
  type MsgRequest,
  type NatsConnection,
} from 'nats';
import { StreamReadError } from '../errors.ts';

/** One message of the stream, read back by consumer or by get. */
export interface StreamMessage {
  seq: number;
  subject: string;
  data: Uint8Array;
  headers?: MsgHdrs;
}

/** JetStream error codes (nats-server errors.json). */
export const JS_NO_MESSAGE_FOUND = 10037;

export function jsErrorCode(err: unknown): number | undefined {
  return (err as { api_error?: { err_code?: number } } | undefined)?.api_error?.err_code;
}

export interface ReadOptions {
  headersOnly?: boolean;
  /** Messages per pull. */
  batch?: number;
  /** How long a pull waits for its messages before the consumer is taken for lost. */
  pullTimeoutMs?: number;
  /** No message for this long (consumers failing to start, pulls bringing nothing): the read fails. */
  stallMs?: number;
}

/** Every message on `filter` that is in the stream when the read starts (and those added while it goes on). */
export async function* readPulled(
  nc: NatsConnection,
  jsm: JetStreamManager,
  stream: string,
  filter: string,
  options: ReadOptions = {},
): AsyncGenerator<StreamMessage> {
  const { headersOnly = false, batch = 1000, pullTimeoutMs = 2000, stallMs = 60_000 } = options;
  const first = await getNext(jsm, stream, filter, 1);
  if (!first) return;
  let nextSeq = first.seq;
  let lastProgress = Date.now();
  let lastError: unknown;
  for (;;) {
    if (Date.now() - lastProgress > stallMs) {
      throw new StreamReadError(
        `reading ${stream} ${filter}: nothing for ${stallMs} ms${lastError ? ` (${errorMessage(lastError)})` : ''}`,
        { cause: lastError },
      );
    }
    const name = `fleetgate_read_${nuid.next()}`;
    try {
      await jsm.consumers.add(stream, {
        name,
        filter_subject: filter,
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: nextSeq,
        ack_policy: AckPolicy.None,
        headers_only: headersOnly,
        mem_storage: true,
        num_replicas: 1,
        // A consumer whose reader went away (or whose creation timed out here and happened later) removes itself.
        inactive_threshold: nanos(30_000),
      });
    } catch (err: unknown) {
      lastError = err;
      await sleep(250);
      continue;
    }
    try {
      for (;;) {
        const { messages, pending } = await pull(nc, stream, name, batch, pullTimeoutMs);
        if (messages.length === 0) break; // the consumer is gone or stuck: a new one
        for (const m of messages) {
          yield m;
          nextSeq = m.seq + 1;
        }
        lastProgress = Date.now();
        if (pending === 0) return;
      }
    } finally {
      jsm.consumers.delete(stream, name).catch(() => false);
    }
    await sleep(250);
  }
}

/**
 * One pull of up to `batch` messages without waiting for new ones (`no_wait`). Ends at `batch` messages, at the
 * last one pending, at a status (404 no messages, 408, 409), or after `timeoutMs`.
 */
function pull(
  nc: NatsConnection,
  stream: string,
  consumer: string,
  batch: number,
  timeoutMs: number,
): Promise<{ messages: StreamMessage[]; pending: number }> {
  return new Promise((resolve) => {
    const inbox = createInbox();
    const messages: StreamMessage[] = [];
    let pending = -1;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sub.unsubscribe();
      resolve({ messages, pending });
    };
    const sub = nc.subscribe(inbox, {
      callback: (err, m) => {
        const ack = err ? undefined : ackInfo(m);
        if (!ack) return finish(); // an error or a status message: this pull is over
        messages.push({ seq: ack.streamSeq, subject: m.subject, data: m.data, headers: m.headers });
        pending = ack.pending;
        if (messages.length >= batch || pending === 0) finish();
      },
    });
    const timer = setTimeout(finish, timeoutMs);
    nc.publish(`$JS.API.CONSUMER.MSG.NEXT.${stream}.${consumer}`, JSON.stringify({ batch, no_wait: true }), { reply: inbox });
  });
}

/**
 * Stream sequence and pending count from a delivered message's reply subject:
 * `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>` (2.9), with
 * `<domain>.<account hash>` after `$JS.ACK` and a random token at the end from 2.10 on.
 */
function ackInfo(m: Msg): { streamSeq: number; pending: number } | undefined {
  if (!m.reply?.startsWith('$JS.ACK.')) return undefined;
  const t = m.reply.split('.');
  const base = t.length === 9 ? 2 : 4;
  const streamSeq = Number(t[base + 3]);
  const pending = Number(t[base + 6]);
  return Number.isSafeInteger(streamSeq) && Number.isSafeInteger(pending) ? { streamSeq, pending } : undefined;
}

/** Every message on `filter`, one leader get each: for filters that match few messages. */
export async function* readByGet(jsm: JetStreamManager, stream: string, filter: string): AsyncGenerator<StreamMessage> {
  for (let seq = 1; ;) {
    const m = await getNext(jsm, stream, filter, seq);
    if (!m) return;
    yield m;
    seq = m.seq + 1;
  }
}

/** The first message on `filter` at or after `seq`, if any. */
export async function getNext(
  jsm: JetStreamManager,
  stream: string,
  filter: string,
  seq: number,
): Promise<StreamMessage | undefined> {
  try {
    // next_by_subj is in nats-server 2.9's STREAM.MSG.GET; nats.js types it for direct gets only.
    const m = await jsm.streams.getMessage(stream, { seq, next_by_subj: filter } as unknown as MsgRequest);
    return { seq: m.seq, subject: m.subject, data: m.data, headers: m.header };
  } catch (err: unknown) {
    if (jsErrorCode(err) === JS_NO_MESSAGE_FOUND) return undefined;
    throw err;
  }
}
