/**
 * Opening the JetStream sink (design in sink-jetstream.ts): the options checked, the stream created or checked and
 * updated, the KV bucket of seqs beside it with the same replicas.
 */
import { ConfigError } from '@fleetgate/core';
import {
  DiscardPolicy,
  nanos,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
  type KV,
  type NatsConnection,
  type StreamConfig,
} from 'nats';
import type { JetStreamNames } from './sink-jetstream-names.ts';
import { jsErrorCode } from './sink-jetstream-read.ts';

export const DEFAULT_DUPLICATE_WINDOW_MS = 120_000;
/** JetStream error codes (nats-server errors.json). */
const STREAM_NOT_FOUND = 10059;

/** The stream and the bucket the sink writes to, ready. */
export interface SinkStorage {
  /** Replicas the stream has (what it was created with, or scaled to). */
  replicas: number;
  kv: KV;
}

export interface StorageOptions {
  /** Asked for explicitly: an existing stream and bucket are scaled to it. Left out: the default for the cluster. */
  replicas: number | undefined;
  /** Asked for explicitly: an existing stream is changed to it. */
  duplicateWindowMs: number | undefined;
  timeoutMs: number;
}

/** Creates the stream and the KV bucket if missing (or checks and updates them). */
export async function openStorage(
  nc: NatsConnection,
  jsm: JetStreamManager,
  js: JetStreamClient,
  names: JetStreamNames,
  servers: number,
  { replicas: asked, duplicateWindowMs, timeoutMs }: StorageOptions,
): Promise<SinkStorage> {
  const replicas = asked ?? defaultReplicas(nc, servers);
  const streamReplicas = await ensureStream(jsm, names, replicas, asked !== undefined, duplicateWindowMs);
  // allow_direct off: gets go to the bucket's leader, so a read sees every acknowledged write (a direct get
  // may be answered by a follower that is behind).
  const kv = await js.views.kv(names.kvBucket, {
    replicas: streamReplicas,
    history: 1,
    storage: StorageType.File,
    allow_direct: false,
    timeout: timeoutMs,
  });
  if (asked !== undefined) await scaleStream(jsm, `KV_${names.kvBucket}`, replicas);
  return { replicas: streamReplicas, kv };
}

/** Replicas, if given, must be a whole number from 1 to 5. */
export function checkReplicas(replicas: number | undefined): number | undefined {
  if (replicas !== undefined && !(Number.isInteger(replicas) && replicas >= 1 && replicas <= 5)) {
    throw new ConfigError('replicas', `${replicas} is not a whole number from 1 to 5`);
  }
  return replicas;
}

export function positive(field: string, value: number): number {
  if (!(Number.isFinite(value) && value > 0)) throw new ConfigError(field, `${value} is not a positive number`);
  return value;
}

/** 3 on a cluster of 3 or more servers (as advertised, or as configured), 1 otherwise. */
function defaultReplicas(nc: NatsConnection, configured: number): number {
  const info = nc.info;
  if (!info?.cluster) return 1;
  return Math.max(info.connect_urls?.length ?? 0, configured) >= 3 ? 3 : 1;
}

/**
 * Creates the stream, or checks an existing one: file storage is required; missing subjects are added; replicas
 * and the duplicate window are changed only when the options name them (both can change on a live stream).
 */
async function ensureStream(
  jsm: JetStreamManager,
  names: JetStreamNames,
  replicas: number,
  scale: boolean,
  duplicateWindowMs: number | undefined,
): Promise<number> {
  const subjects = [names.records, names.gaps];
  let config: StreamConfig;
  try {
    config = (await jsm.streams.info(names.stream)).config;
  } catch (err: unknown) {
    if (jsErrorCode(err) !== STREAM_NOT_FOUND) throw err;
    await jsm.streams.add({
      name: names.stream,
      subjects,
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      num_replicas: replicas,
      duplicate_window: nanos(duplicateWindowMs ?? DEFAULT_DUPLICATE_WINDOW_MS),
      description: 'fleetgate records and gaps (cloud-stub JetStream sink)',
    });
    return replicas;
  }
  if (config.storage !== StorageType.File)
    throw new ConfigError('stream', `${names.stream} exists with ${config.storage} storage; the sink needs file storage`);
  const update: Partial<StreamConfig> = {};
  const missing = subjects.filter((s) => !config.subjects.includes(s));
  if (missing.length > 0) update.subjects = [...config.subjects, ...missing];
  if (scale && config.num_replicas !== replicas) update.num_replicas = replicas;
  if (duplicateWindowMs !== undefined && config.duplicate_window !== nanos(duplicateWindowMs))
    update.duplicate_window = nanos(duplicateWindowMs);
  if (Object.keys(update).length > 0) await jsm.streams.update(names.stream, update);
  return update.num_replicas ?? config.num_replicas;
}

async function scaleStream(jsm: JetStreamManager, stream: string, replicas: number): Promise<void> {
  const { config } = await jsm.streams.info(stream);
  if (config.num_replicas !== replicas) await jsm.streams.update(stream, { num_replicas: replicas });
}
