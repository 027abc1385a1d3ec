/**
 * The JetStream sink's KV bucket of seqs (design in sink-jetstream.ts, "lastSeq"): per gateway
 * {"lastSeq": N, "duplicates": M}, raised by compare-and-set after a commit's PubAcks, one raise of a gateway's
 * entry at a time in this replica, and read from the bucket's leader.
 */
import { errorMessage } from '@fleetgate/core';
import type { JetStreamManager, KV } from 'nats';
import { JetStreamStoreError } from '../errors.ts';
import { decodeKey, encodeKey } from './sink-jetstream-names.ts';
import { jsErrorCode } from './sink-jetstream-read.ts';

/** JetStream error codes (nats-server errors.json). */
const WRONG_LAST_SEQUENCE = 10071;
const MAX_CAS_ATTEMPTS = 50;

export interface GatewayEntry {
  lastSeq: number;
  duplicates: number;
  /** KV revision the entry was read or written at; 0 = no entry. */
  revision: number;
}

export class GatewaySeqs {
  /** Last known KV entry per gateway: a guess for compare-and-set, never an answer (other replicas write too). */
  private readonly entries = new Map<string, GatewayEntry>();
  /** Per gateway, the raise of its entry under way: the next waits for it. */
  private readonly raising = new Map<string, Promise<void>>();

  constructor(
    private readonly kv: KV,
    private readonly jsm: JetStreamManager,
    private readonly kvBucket: string,
  ) {}

  /** Raises the gateway's KV entry to at least `maxSeq` and adds `duplicates`, after the raises before it. */
  raise(gatewayId: string, maxSeq: number, duplicates: number): Promise<void> {
    const raised = (this.raising.get(gatewayId) ?? Promise.resolve())
      .catch(() => {})
      .then(() => this.raiseNow(gatewayId, maxSeq, duplicates));
    this.raising.set(gatewayId, raised);
    const forget = () => {
      if (this.raising.get(gatewayId) === raised) this.raising.delete(gatewayId);
    };
    raised.then(forget, forget);
    return raised;
  }

  /** Raises the gateway's KV entry by compare-and-set. */
  private async raiseNow(gatewayId: string, maxSeq: number, duplicates: number): Promise<void> {
    const key = encodeKey(gatewayId);
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const current = this.entries.get(gatewayId) ?? (await this.read(gatewayId));
      // The cached lastSeq can only be lower than the true one: nothing to raise stays nothing to raise.
      if (maxSeq <= current.lastSeq && duplicates === 0) return;
      const next = { lastSeq: Math.max(current.lastSeq, maxSeq), duplicates: current.duplicates + duplicates };
      const value = JSON.stringify(next);
      try {
        const revision =
          current.revision === 0 ? await this.kv.create(key, value) : await this.kv.update(key, value, current.revision);
        this.entries.set(gatewayId, { ...next, revision });
        return;
      } catch (err: unknown) {
        this.entries.delete(gatewayId);
        if (jsErrorCode(err) !== WRONG_LAST_SEQUENCE)
          throw new JetStreamStoreError(`JetStream did not store lastSeq of ${gatewayId}: ${errorMessage(err)}`, { cause: err });
      }
    }
    throw new JetStreamStoreError(`lastSeq of ${gatewayId}: ${MAX_CAS_ATTEMPTS} compare-and-set conflicts in a row`);
  }

  async read(gatewayId: string): Promise<GatewayEntry> {
    let e;
    try {
      e = await this.kv.get(encodeKey(gatewayId));
    } catch (err: unknown) {
      throw new JetStreamStoreError(`JetStream did not answer for lastSeq of ${gatewayId}: ${errorMessage(err)}`, { cause: err });
    }
    const entry =
      e && e.operation === 'PUT'
        ? { ...parseEntry(e.string()), revision: e.revision }
        : { lastSeq: 0, duplicates: 0, revision: 0 };
    this.entries.set(gatewayId, entry);
    return entry;
  }

  /** Every gateway's entry. Keys from the bucket stream's per-subject counts (one leader call, no consumer). */
  async readAll(): Promise<Map<string, GatewayEntry>> {
    const prefix = `$KV.${this.kvBucket}.`;
    const { state } = await this.jsm.streams.info(`KV_${this.kvBucket}`, { subjects_filter: `${prefix}>` });
    const keys = Object.keys(state.subjects ?? {}).map((subject) => subject.slice(prefix.length));
    const entries = new Map<string, GatewayEntry>();
    for (let i = 0; i < keys.length; i += 64) {
      await Promise.all(
        keys.slice(i, i + 64).map(async (key) => {
          const id = decodeKey(key);
          const entry = await this.read(id);
          if (entry.revision !== 0) entries.set(id, entry);
        }),
      );
    }
    return entries;
  }
}

function parseEntry(text: string): Omit<GatewayEntry, 'revision'> {
  const value = JSON.parse(text) as Partial<GatewayEntry>;
  return { lastSeq: Number(value.lastSeq ?? 0), duplicates: Number(value.duplicates ?? 0) };
}
