/**
 * grpc.health.v1 on every gRPC listener: the gateway's device link and the cloud-stub's Uplink listener answer
 * Check and Watch (SERVING while open), and a close tells watchers NOT_SERVING and ends their streams instead
 * of waiting for them.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { join } from 'node:path';
import {
  credentials,
  makeClientConstructor,
  status,
  type Client,
  type ClientReadableStream,
  type ServiceDefinition,
  type ServiceError,
} from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { CloudStub } from '@fleetgate/cloud-stub';
import { type HostPort, systemClock, systemTimers } from '@fleetgate/core';
import { silentLogger } from '@fleetgate/common';
import { DeviceRegistry } from '../../gateway/src/commands/device-registry.ts';
import { DeviceLinkServer, type DeviceLinkOptions } from '../../gateway/src/device-link/device-link-server.ts';
import { AnonymousAuth } from '../../gateway/src/ingress/device-auth.ts';
import { useTempDir } from '../support/temp-dir.ts';

interface HealthResponse {
  status: 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';
}

/** A client of grpc.health.v1.Health, made from the service definition grpc-health-check ships. */
interface HealthClient extends Client {
  check(request: { service: string }, callback: (err: ServiceError | null, response?: HealthResponse) => void): void;
  watch(request: { service: string }): ClientReadableStream<HealthResponse>;
}
const HealthClientConstructor = makeClientConstructor(healthService as unknown as ServiceDefinition, 'grpc.health.v1.Health');

function healthClient(address: HostPort): HealthClient {
  return new HealthClientConstructor(`127.0.0.1:${address.port}`, credentials.createInsecure()) as unknown as HealthClient;
}

function check(client: HealthClient, service: string): Promise<HealthResponse['status']> {
  return new Promise((resolve, reject) =>
    client.check({ service }, (err, response) => (err ? reject(err) : resolve(response!.status))),
  );
}

/** Statuses a Watch stream reports, and how it ended. */
function watch(client: HealthClient, service: string) {
  const stream = client.watch({ service });
  const statuses: Array<HealthResponse['status']> = [];
  const waiters: Array<() => void> = [];
  stream.on('data', (response: HealthResponse) => {
    statuses.push(response.status);
    for (const wake of waiters.splice(0)) wake();
  });
  const ended = new Promise<ServiceError | null>((resolve) => {
    stream.on('error', (err: ServiceError) => resolve(err));
    stream.on('end', () => resolve(null));
  });
  return {
    statuses,
    ended,
    /** Resolves once `n` statuses have come. */
    async received(n: number): Promise<void> {
      while (statuses.length < n) await new Promise<void>((resolve) => waiters.push(resolve));
    },
  };
}

/** The listener answers SERVING for the server and its service, NOT_FOUND for others; close() ends watchers. */
async function assertHealthLifecycle(address: HostPort, serviceName: string, close: () => Promise<void>): Promise<void> {
  const client = healthClient(address);
  try {
    assert.equal(await check(client, ''), 'SERVING');
    assert.equal(await check(client, serviceName), 'SERVING');
    await assert.rejects(check(client, 'no.such.Service'), (err: ServiceError) => err.code === status.NOT_FOUND);

    const watcher = watch(client, '');
    await watcher.received(1);
    assert.deepEqual(watcher.statuses, ['SERVING']);
    const started = Date.now();
    await close();
    // Not held by the open Watch until grpc-js forces the shutdown (2 s).
    assert.ok(Date.now() - started < 1500, `close took ${Date.now() - started} ms`);
    const end = await watcher.ended;
    assert.deepEqual(watcher.statuses, ['SERVING', 'NOT_SERVING']);
    assert.equal(end?.code, status.UNAVAILABLE);
    await assert.rejects(check(client, ''), (err: ServiceError) => err.code === status.UNAVAILABLE, 'nothing listens any more');
  } finally {
    client.close();
  }
}

describe('grpc health', function () {
  this.timeout(15_000);
  const dir = useTempDir();

  it('grpc health - the device link listener answers SERVING while open, tells watchers NOT_SERVING on close', async () => {
    // No device connects here: the session dependencies are never used.
    const link = await DeviceLinkServer.start({
      listen: { host: '127.0.0.1', port: 0 },
      auth: new AnonymousAuth(),
      pipeline: {} as DeviceLinkOptions['pipeline'],
      commands: { registry: new DeviceRegistry(), center: {} as DeviceLinkOptions['commands']['center'] },
      maxPayloadBytes: 1024,
      maxUnacked: 10,
      maxConnections: 10,
      logger: silentLogger,
      clock: systemClock,
      timers: systemTimers,
    });
    let closed = false;
    try {
      await assertHealthLifecycle(link.address, 'fleetgate.v1.DeviceLink', async () => {
        closed = true;
        await link.close();
      });
    } finally {
      if (!closed) await link.close();
    }
  });

  it('grpc health - the cloud-stub Uplink listener answers SERVING while open, tells watchers NOT_SERVING on close', async () => {
    const stub = await CloudStub.start({
      listen: { host: '127.0.0.1', port: 0 },
      dataDir: join(dir.path, 'cloud'),
      durability: 'process',
    });
    let closed = false;
    try {
      await assertHealthLifecycle(stub.address, 'fleetgate.v1.Uplink', async () => {
        closed = true;
        await stub.close();
      });
    } finally {
      if (!closed) await stub.close();
    }
  });

  it('grpc health - a Watch of a service the listener does not serve hears SERVICE_UNKNOWN', async () => {
    const stub = await CloudStub.start({
      listen: { host: '127.0.0.1', port: 0 },
      dataDir: join(dir.path, 'cloud'),
      durability: 'process',
    });
    const client = healthClient(stub.address);
    try {
      const watcher = watch(client, 'no.such.Service');
      await watcher.received(1);
      assert.deepEqual(watcher.statuses, ['SERVICE_UNKNOWN']);
      await stub.close();
      await once(client.watch({ service: '' }), 'error');
    } finally {
      client.close();
      await stub.close();
    }
  });
});
