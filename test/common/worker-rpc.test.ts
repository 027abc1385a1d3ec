/** The worker RPC over a MessageChannel: both ends in this thread, messages through real ports. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { ConfigError, FleetgateError } from '@fleetgate/core';
import { RpcClient, RpcServer, WorkerRpcError } from '@fleetgate/common';

class FullError extends FleetgateError {
  override name = 'FullError';
  constructor(readonly reason: 'disk' | 'limit') {
    super(`full (${reason})`);
  }
}

interface Methods {
  add(a: number, b: number): number;
  later(value: string): Promise<string>;
  refuse(reason: 'disk' | 'limit'): never;
  misconfigured(): never;
  unknown(): never;
  take(bytes: ArrayBuffer): number;
  poke(n: number): void;
}

interface Events {
  said: [string, number];
}

describe('worker rpc', function () {
  let ports: MessagePort[] = [];
  afterEach(() => {
    for (const port of ports) port.close();
    ports = [];
  });

  const channel = () => {
    const { port1, port2 } = new MessageChannel();
    ports.push(port1, port2);
    return { port1, port2 };
  };

  const serve = (port: MessagePort, poked: number[] = []) =>
    new RpcServer<Methods, Events>(port, {
      add: (a, b) => a + b,
      later: async (value) => `${value}!`,
      refuse: (reason) => {
        throw new FullError(reason);
      },
      misconfigured: () => {
        throw new FleetgateError('cannot open', { cause: new ConfigError('--data', 'not a folder') });
      },
      unknown: () => {
        throw Object.assign(new TypeError('not this'), { code: 'E_THIS' });
      },
      take: (bytes) => bytes.byteLength,
      poke: (n) => void poked.push(n),
    });

  it('worker rpc - calls are answered with their value, synchronous or not, matched to their call by id', async () => {
    const { port1, port2 } = channel();
    serve(port2);
    const client = new RpcClient<Methods, Events>(port1, { errors: {} });
    const [sum, later] = await Promise.all([client.call('add', [2, 3]), client.call('later', ['x'])]);
    assert.deepEqual([sum, later], [5, 'x!']);
    assert.equal(client.pending, 0);
  });

  it('worker rpc - an error crosses as the class registered under its name, with its fields and its cause', async () => {
    const { port1, port2 } = channel();
    serve(port2);
    const client = new RpcClient<Methods, Events>(port1, { errors: { FullError, FleetgateError, ConfigError } });
    const full = await client.call('refuse', ['disk']).catch((err: unknown) => err);
    assert.ok(full instanceof FullError, String(full));
    assert.deepEqual([full.name, full.message, full.reason], ['FullError', 'full (disk)', 'disk']);
    assert.match(full.stack ?? '', /worker-rpc\.test\.ts/, "the other side's stack");

    const wrapped = await client.call('misconfigured', []).catch((err: unknown) => err);
    assert.ok(wrapped instanceof FleetgateError);
    assert.ok(wrapped.cause instanceof ConfigError, 'the cause is revived too');
    assert.deepEqual([wrapped.cause.field, wrapped.cause.message], ['--data', '--data: not a folder']);

    const plain = await client.call('unknown', []).catch((err: unknown) => err);
    assert.ok(plain instanceof Error && !(plain instanceof TypeError), 'a class the registry does not know: a plain Error');
    assert.deepEqual([plain.name, plain.message, (plain as Error & { code: string }).code], ['TypeError', 'not this', 'E_THIS']);
  });

  it('worker rpc - a transferred buffer moves to the other side; a notification is served and not answered', async () => {
    const { port1, port2 } = channel();
    const poked: number[] = [];
    serve(port2, poked);
    const client = new RpcClient<Methods, Events>(port1, { errors: {} });
    const bytes = new ArrayBuffer(1024);
    const size = client.call('take', [bytes], [bytes]);
    assert.equal(bytes.byteLength, 0, 'detached here');
    assert.equal(await size, 1024);
    client.notify('poke', [7]);
    assert.equal(client.pending, 0);
    assert.equal(await client.call('add', [1, 1]), 2);
    assert.deepEqual(poked, [7], 'served, in order, before the call after it');
  });

  it('worker rpc - a method that is not served is refused; events reach their listener', async () => {
    const { port1, port2 } = channel();
    const server = serve(port2);
    const said: Array<[string, number]> = [];
    const client = new RpcClient<Methods & { toString(): string }, Events>(port1, {
      errors: { WorkerRpcError },
      events: { said: (text, n) => void said.push([text, n]) },
    });
    await assert.rejects(client.call('toString', []), (err: unknown) => err instanceof WorkerRpcError);
    server.emit('said', 'hello', 1);
    await client.call('add', [0, 0]);
    assert.deepEqual(said, [['hello', 1]]);
  });

  it('worker rpc - fatal fails every call waiting and every later one, and tells the owner once', async () => {
    const { port1, port2 } = channel();
    let release: (value: string) => void = () => {};
    const server = new RpcServer<Pick<Methods, 'later'>>(port2, {
      later: () => new Promise<string>((resolve) => (release = resolve)),
    });
    const failures: Error[] = [];
    const client = new RpcClient<Pick<Methods, 'later'>>(port1, {
      errors: { FullError },
      onFailure: (err) => void failures.push(err),
    });
    const waiting = client.call('later', ['x']);
    server.fatal(new FullError('limit'));
    await assert.rejects(waiting, FullError);
    await assert.rejects(client.call('later', ['y']), FullError);
    assert.equal(failures.length, 1);
    assert.ok(client.failure instanceof FullError);
    release('too late');
  });

  it('worker rpc - close() closes the port only once the answers under way are posted', async () => {
    const { port1, port2 } = channel();
    const server = new RpcServer<Pick<Methods, 'later'>>(port2, {
      later: async (value) => {
        server.close();
        await new Promise((resolve) => setImmediate(resolve));
        return value;
      },
    });
    const client = new RpcClient<Pick<Methods, 'later'>>(port1, { errors: {} });
    const closed = once(port1, 'close');
    assert.equal(await client.call('later', ['last']), 'last');
    await closed;
  });
});
