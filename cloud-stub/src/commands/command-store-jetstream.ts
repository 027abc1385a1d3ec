/**
 * The backend's commands shared by every replica, in two JetStream key-value buckets: `<prefix>-commands`
 * (key: the command id as encodeKey writes it, sink-jetstream-names.ts, which leaves the ids this store makes, UUIDs,
 * as they are; value: the command as JSON) and `<prefix>-devices` (key: the device id in base64url, as
 * KV keys allow only [-/_=.a-zA-Z0-9]; value: where it was last reported). Each replica watches both buckets
 * into memory, so that reads (pending commands, locations) are local; writes go to the bucket, and an update
 * is a compare-and-set on the entry's revision, so that two replicas reporting on one command cannot undo
 * each other (states only move forward). Commands are kept a week.
 *
 * The command bus is core NATS: `<prefix>.cmd.new` carries the id of a command just created, so that the
 * replica holding the device's gateway sends it at once.
 */
import { randomUUID } from 'node:crypto';
import { StringCodec, type KV, type KvEntry, type NatsConnection, type Subscription } from 'nats';
import {
  advanced,
  type CloudCommand,
  type CommandUpdate,
  type CloudCommandStore,
  type CommandBus,
  type CommandState,
  type DeviceLocation,
  type NewCommand,
} from './command-store.ts';
import { CommandConflictError } from '../errors.ts';
import { decodeKey, encodeKey } from '../sink/sink-jetstream-names.ts';

const WEEK_MS = 7 * 24 * 3600 * 1000;
const CAS_ATTEMPTS = 10;

interface StoredCommand extends Omit<CloudCommand, 'payload' | 'result'> {
  payload: string;
  result: string;
}

const toStored = (c: CloudCommand): StoredCommand => ({
  ...c,
  payload: c.payload.toString('base64'),
  result: c.result.toString('base64'),
});
const fromStored = (s: StoredCommand): CloudCommand => ({
  ...s,
  payload: Buffer.from(s.payload, 'base64'),
  result: Buffer.from(s.result, 'base64'),
});
const deviceKey = (deviceId: string) => Buffer.from(deviceId).toString('base64url');
const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

export interface JetStreamCommandStoreOptions {
  /** Bucket and subject prefix; default "fleetgate". */
  prefix?: string;
  /** Replicas of the buckets (3 on a 3-node cluster). */
  replicas: number;
}

export class JetStreamCommandStore implements CloudCommandStore, CommandBus {
  private readonly commands = new Map<string, { command: CloudCommand; revision: number }>();
  private readonly locations = new Map<string, DeviceLocation>();
  private readonly watchers: Array<{ stop(): void }> = [];
  /** Per command, the update under way in this replica: the next waits for it. */
  private readonly updating = new Map<string, Promise<CloudCommand | undefined>>();
  private subscription: Subscription | undefined;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly commandsKv: KV,
    private readonly devicesKv: KV,
    private readonly subject: string,
  ) {}

  static async open(
    nc: NatsConnection,
    { prefix = 'fleetgate', replicas }: JetStreamCommandStoreOptions,
  ): Promise<JetStreamCommandStore> {
    const js = nc.jetstream();
    const commandsKv = await js.views.kv(`${prefix}-commands`, { replicas, history: 1, ttl: WEEK_MS });
    const devicesKv = await js.views.kv(`${prefix}-devices`, { replicas, history: 1 });
    const store = new JetStreamCommandStore(nc, commandsKv, devicesKv, `${prefix}.cmd.new`);
    await Promise.all([
      store.mirror(commandsKv, (e) => store.applyCommand(e)),
      store.mirror(devicesKv, (e) => store.applyLocation(e)),
    ]);
    return store;
  }

  async create({ deviceId, name, payload, expiresAtMs }: NewCommand): Promise<CloudCommand> {
    const now = Date.now();
    const command: CloudCommand = {
      commandId: randomUUID(),
      deviceId,
      name,
      payload,
      state: 'pending',
      result: Buffer.alloc(0),
      message: '',
      gatewayId: null,
      createdAtMs: now,
      updatedAtMs: now,
      expiresAtMs,
    };
    const revision = await this.commandsKv.create(encodeKey(command.commandId), encode(toStored(command)));
    this.remember(command, revision);
    return command;
  }

  async get(commandId: string): Promise<CloudCommand | undefined> {
    const known = this.commands.get(commandId);
    if (known) return known.command;
    // Created by another replica a moment ago: the watch may not have brought it yet. An id from the admin API
    // may hold anything (a space, a dot): encoded, it is a key, not a refusal from nats.js.
    const entry = await this.commandsKv.get(encodeKey(commandId));
    if (!entry || entry.operation !== 'PUT') return undefined;
    this.applyCommand(entry);
    return this.commands.get(commandId)?.command;
  }

  /**
   * One update of a command at a time in this replica, each after the one before has its answer: nats-server before
   * 2.9.21 may take two compare-and-sets on the same revision of a clustered stream (nats-server#4320, as in
   * sink-jetstream.ts), and the lower state could then land last. Across replicas that can still happen when two
   * report on one command at the very same moment.
   */
  update(commandId: string, state: CommandState, fields: CommandUpdate): Promise<CloudCommand | undefined> {
    const updated = (this.updating.get(commandId) ?? Promise.resolve())
      .catch(() => {})
      .then(() => this.updateNow(commandId, state, fields));
    this.updating.set(commandId, updated);
    const forget = () => {
      if (this.updating.get(commandId) === updated) this.updating.delete(commandId);
    };
    updated.then(forget, forget);
    return updated;
  }

  private async updateNow(commandId: string, state: CommandState, fields: CommandUpdate): Promise<CloudCommand | undefined> {
    const key = encodeKey(commandId);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const entry = await this.commandsKv.get(key);
      const stored =
        entry?.operation === 'PUT' ? { command: fromStored(entry.json<StoredCommand>()), revision: entry.revision } : undefined;
      // A get may be answered by a follower that has not applied this replica's last write yet (the bucket allows
      // direct gets): then what this replica remembers is the newer.
      const known = this.commands.get(commandId);
      const current = known && (!stored || known.revision > stored.revision) ? known : stored;
      if (!current) return undefined;
      const next = advanced(current.command, state, fields);
      if (!next) return current.command;
      try {
        this.remember(next, await this.commandsKv.update(key, encode(toStored(next)), current.revision));
        return next;
      } catch (err: unknown) {
        // Another replica wrote it in between: read again and decide again.
        if (!/wrong last sequence/i.test((err as Error).message)) throw err;
      }
    }
    throw new CommandConflictError(`command ${commandId}: ${CAS_ATTEMPTS} conflicting updates in a row`);
  }

  async pending(deviceId?: string): Promise<CloudCommand[]> {
    const now = Date.now();
    return [...this.commands.values()]
      .map(({ command }) => command)
      .filter((c) => c.state === 'pending' && c.expiresAtMs > now && (deviceId === undefined || c.deviceId === deviceId))
      .sort((a, b) => a.createdAtMs - b.createdAtMs);
  }

  async unconfirmedExpired(nowMs: number): Promise<CloudCommand[]> {
    return [...this.commands.values()]
      .map(({ command }) => command)
      .filter((c) => c.state === 'pending' && c.expiresAtMs <= nowMs);
  }

  async locate(deviceId: string, location: DeviceLocation): Promise<void> {
    this.locations.set(deviceId, location);
    await this.devicesKv.put(deviceKey(deviceId), encode(location));
  }

  async location(deviceId: string): Promise<DeviceLocation | undefined> {
    const known = this.locations.get(deviceId);
    if (known) return known;
    const entry = await this.devicesKv.get(deviceKey(deviceId));
    return entry?.operation === 'PUT' ? entry.json<DeviceLocation>() : undefined;
  }

  announce(commandId: string): void {
    this.nc.publish(this.subject, StringCodec().encode(commandId));
  }

  onAnnounce(handler: (commandId: string) => void): void {
    this.subscription = this.nc.subscribe(this.subject, {
      callback: (err, msg) => err || handler(StringCodec().decode(msg.data)),
    });
  }

  async close(): Promise<void> {
    this.subscription?.unsubscribe();
    for (const watcher of this.watchers) watcher.stop();
  }

  /** Resolves once the bucket's current entries are in memory; updates keep coming after that. */
  private async mirror(kv: KV, apply: (entry: KvEntry) => void): Promise<void> {
    let initialized!: () => void;
    const ready = new Promise<void>((resolve) => (initialized = resolve));
    const watch = await kv.watch({ initializedFn: () => initialized() });
    this.watchers.push(watch);
    void (async () => {
      for await (const entry of watch) apply(entry);
    })();
    await ready;
  }

  private applyCommand(entry: KvEntry): void {
    const commandId = decodeKey(entry.key);
    if (entry.operation !== 'PUT') {
      this.commands.delete(commandId);
      return;
    }
    const known = this.commands.get(commandId);
    if (!known || known.revision < entry.revision)
      this.commands.set(commandId, { command: fromStored(entry.json<StoredCommand>()), revision: entry.revision });
  }

  private applyLocation(entry: KvEntry): void {
    if (entry.operation !== 'PUT') return;
    this.locations.set(Buffer.from(entry.key, 'base64url').toString(), entry.json<DeviceLocation>());
  }

  private remember(command: CloudCommand, revision: number): void {
    const known = this.commands.get(command.commandId);
    if (!known || known.revision < revision) this.commands.set(command.commandId, { command, revision });
  }
}
