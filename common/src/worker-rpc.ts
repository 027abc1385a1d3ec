/**
 * Calls between a thread and the worker thread it started, over a MessagePort-like port: a Worker, the
 * worker's parentPort, or either end of a MessageChannel (which is how a test runs both ends in one thread).
 * The gateway's journal thread and the cloud-stub's sink thread both talk this way.
 *
 *   caller (RpcClient)                         callee (RpcServer)
 *   call(method, args, transfer)  --call-->    methods[method](...args): its value, or a promise of it
 *                                 <--reply--   the value, or the error it threw
 *   notify(method, args)          --call-->    the same, with no answer (id 0)
 *                                 <--event--   emit(name, ...args): the callee speaks first
 *                                 <--fatal--   the callee cannot go on: every call waiting fails, and every later one
 *
 * Errors cross with their class: the callee sends the name, message, stack, cause and the error's own plain
 * fields (a reason, a code); the caller re-creates the class its registry has under that name (the same
 * prototype, so `instanceof` holds and fields read as before), or a plain Error that keeps the name. Nothing is
 * copied that the caller lists in `transfer`; the caller decides what each call costs.
 */
import type { TransferListItem } from 'node:worker_threads';
import { FleetgateError } from '@fleetgate/core';

/** What the RPC needs of a port: node:worker_threads' Worker, MessagePort and parentPort all fit. */
export interface RpcPort {
  postMessage(message: unknown, transfer?: readonly TransferListItem[]): void;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  close?(): void;
}

/** The methods one side serves: structured-cloneable arguments, a cloneable value (or a promise of one). */
export type RpcMethods<M> = { [K in keyof M]: (...args: never[]) => unknown };

/** The events one side emits: name -> arguments. */
export type RpcEvents<E> = { [K in keyof E]: unknown[] };

/** Error classes an end re-creates by name; `{ JournalFullError, ConfigError }` names each by its class. */
export type ErrorClasses = Readonly<Record<string, abstract new (...args: never[]) => Error>>;

type Args<F> = F extends (...args: infer A) => unknown ? A : never;
type Result<F> = F extends (...args: never[]) => infer R ? Awaited<R> : never;
type Plain = string | number | boolean | bigint | null | undefined;

/** An error as it crosses: what structured clone can carry of it. */
interface WireError {
  name: string;
  message: string;
  stack?: string;
  fields: Record<string, Plain>;
  cause?: WireError | { value: Plain };
}

type Wire =
  | { rpc: 'call'; id: number; method: string; args: unknown[] }
  | { rpc: 'reply'; id: number; value: unknown }
  | { rpc: 'error'; id: number; error: WireError }
  | { rpc: 'event'; name: string; args: unknown[] }
  | { rpc: 'fatal'; error: WireError };

/** A call the other side cannot answer (no such method), or a message that is not of this protocol. */
export class WorkerRpcError extends FleetgateError {
  override name = 'WorkerRpcError';
}

export interface RpcClientOptions<E extends RpcEvents<E>> {
  /** The classes errors from the other side are re-created as. */
  errors: ErrorClasses;
  /** Listeners of the other side's events. */
  events?: { [K in keyof E]?: (...args: E[K]) => void };
  /** The other side said it cannot go on (fatal), or the owner called fail(): once, with the first reason. */
  onFailure?: (err: Error) => void;
}

/** The calling end. */
export class RpcClient<M extends RpcMethods<M>, E extends RpcEvents<E> = Record<never, never>> {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>();
  private failed: Error | undefined;

  constructor(
    private readonly port: RpcPort,
    private readonly options: RpcClientOptions<E>,
  ) {
    port.on('message', (message) => this.receive(message as Wire));
  }

  /** Why this end can call no more (fail, or the other side's fatal); undefined while it can. */
  get failure(): Error | undefined {
    return this.failed;
  }

  /** Calls waiting for their answer. */
  get pending(): number {
    return this.waiting.size;
  }

  /** Calls `method` on the other side; the buffers in `transfer` move there (they are detached here). */
  call<K extends keyof M & string>(
    method: K,
    args: Args<M[K]>,
    transfer: readonly TransferListItem[] = [],
  ): Promise<Result<M[K]>> {
    if (this.failed) return Promise.reject(this.failed);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.post({ rpc: 'call', id, method, args }, transfer);
    });
  }

  /** Calls `method` and hears nothing back; dropped once this end failed. */
  notify<K extends keyof M & string>(method: K, args: Args<M[K]>, transfer: readonly TransferListItem[] = []): void {
    if (!this.failed) this.post({ rpc: 'call', id: 0, method, args }, transfer);
  }

  /** Fails every call waiting, and every later one, with `err` (the first reason given wins). */
  fail(err: Error): void {
    if (this.failed) return;
    this.failed = err;
    for (const { reject } of this.waiting.values()) reject(err);
    this.waiting.clear();
    this.options.onFailure?.(err);
  }

  private post(message: Wire, transfer: readonly TransferListItem[]): void {
    this.port.postMessage(message, transfer);
  }

  private receive(message: Wire): void {
    switch (message.rpc) {
      case 'reply':
      case 'error': {
        const call = this.waiting.get(message.id);
        if (!call) return;
        this.waiting.delete(message.id);
        if (message.rpc === 'reply') call.resolve(message.value);
        else call.reject(reviveError(message.error, this.options.errors));
        return;
      }
      case 'event': {
        const listener = this.options.events?.[message.name as keyof E] as ((...args: unknown[]) => void) | undefined;
        listener?.(...message.args);
        return;
      }
      case 'fatal':
        return this.fail(reviveError(message.error, this.options.errors));
      case 'call':
        return;
    }
  }
}

/** The serving end: answers calls with `methods` (own properties only), emits events, says when it is fatal. */
export class RpcServer<M extends RpcMethods<M>, E extends RpcEvents<E> = Record<never, never>> {
  private answering = 0;
  private closing = false;

  constructor(
    private readonly port: RpcPort,
    private readonly methods: M,
  ) {
    port.on('message', (message) => this.receive(message as Wire));
  }

  emit<K extends keyof E & string>(name: K, ...args: E[K]): void {
    this.port.postMessage({ rpc: 'event', name, args } satisfies Wire);
  }

  /** This side cannot go on: the caller fails every call waiting, and every later one, with `err`. */
  fatal(err: unknown): void {
    this.port.postMessage({ rpc: 'fatal', error: wireError(err) } satisfies Wire);
  }

  /** Closes the port once every answer under way is posted, so that the thread can end. */
  close(): void {
    this.closing = true;
    if (this.answering === 0) this.port.close?.();
  }

  private receive(message: Wire): void {
    if (message.rpc !== 'call') return;
    const { id, method, args } = message;
    this.answering++;
    let result: unknown;
    try {
      if (!Object.hasOwn(this.methods, method)) throw new WorkerRpcError(`no method "${method}" is served here`);
      const fn = (this.methods as Record<string, unknown>)[method] as (...args: unknown[]) => unknown;
      result = fn(...args);
    } catch (err: unknown) {
      return this.answer(id, { rpc: 'error', id, error: wireError(err) });
    }
    if (!(result instanceof Promise)) return this.answer(id, { rpc: 'reply', id, value: result });
    result.then(
      (value: unknown) => this.answer(id, { rpc: 'reply', id, value }),
      (err: unknown) => this.answer(id, { rpc: 'error', id, error: wireError(err) }),
    );
  }

  private answer(id: number, message: Wire): void {
    this.answering--;
    if (id !== 0) this.port.postMessage(message);
    if (this.closing && this.answering === 0) this.port.close?.();
  }
}

/** What crosses of `err`: a thrown non-Error becomes an Error with its text. */
function wireError(err: unknown, depth = 0): WireError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err), fields: {} };
  const fields: Record<string, Plain> = {};
  for (const [key, value] of Object.entries(err)) {
    if (key !== 'name' && key !== 'message' && key !== 'stack' && key !== 'cause' && isPlain(value)) fields[key] = value;
  }
  const wire: WireError = { name: err.name, message: err.message, fields };
  if (err.stack !== undefined) wire.stack = err.stack;
  if (err.cause !== undefined && depth < 8) {
    wire.cause =
      err.cause instanceof Error
        ? wireError(err.cause, depth + 1)
        : { value: isPlain(err.cause) ? err.cause : String(err.cause) };
  }
  return wire;
}

/**
 * The error again, on this side: an instance of the registered class of its name, made without running that
 * class's constructor (which takes its own arguments), then given the fields it had.
 */
function reviveError(wire: WireError, classes: ErrorClasses): Error {
  const cls = Object.hasOwn(classes, wire.name) ? classes[wire.name] : undefined;
  const cause =
    wire.cause === undefined ? undefined : 'value' in wire.cause ? wire.cause.value : reviveError(wire.cause, classes);
  const err = Reflect.construct(Error, [wire.message, ...(wire.cause === undefined ? [] : [{ cause }])], cls ?? Error) as Error;
  Object.assign(err, wire.fields);
  // A class's `name` is an instance field its constructor sets; set it as the other side had it.
  Object.defineProperty(err, 'name', { value: wire.name, writable: true, enumerable: cls !== undefined, configurable: true });
  if (wire.stack !== undefined) err.stack = wire.stack;
  return err;
}

function isPlain(value: unknown): value is Plain {
  return value === null || ['string', 'number', 'boolean', 'bigint', 'undefined'].includes(typeof value);
}
