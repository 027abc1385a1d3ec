/**
 * Auth refusals (uplink/is-retryable.ts): a real grpc-js server that answers UNAUTHENTICATED or
 * PERMISSION_DENIED. The uplink backs off long, says so in its stats and in /metrics, and tries again at once
 * when its token changes; any other failure keeps the usual short backoff.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { Server, ServerCredentials, status, type ServerDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { ConnectivityState } from '@fleetgate/core';
import { GATEWAY_AUDIENCE, loadVerifyingKey, silentLogger, TokenVerifier } from '@fleetgate/common';
import { TokenGatewayAuth } from '@fleetgate/cloud-stub';
import { UplinkService, type DownlinkFrame, type UplinkFrame } from '@fleetgate/protos';
import { GatewayMetrics } from '../../gateway/src/admin/metrics.ts';
import { SqliteJournal } from '../../gateway/src/journal/sqlite/journal-sqlite.ts';
import { authRefusal, isRetryable } from '../../gateway/src/uplink/is-retryable.ts';
import { DEFAULT_UPLINK_SETTINGS, Uplink, type UplinkSettings } from '../../gateway/src/uplink/uplink.ts';
import { fakeTime, type FakeTime } from '../support/fake-time.ts';
import { makeFleetKeys } from '../support/fleet-keys.ts';
import { startInProcess, type InProcessStack } from '../support/in-process.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { waitUntil } from '../support/test-device.ts';
import { gatewayStats, upstream } from './stats-fixture.ts';

type Call = ServerDuplexStream<UplinkFrame, DownlinkFrame>;

/** A backend that ends every stream with `answer(token)` (a gRPC status), or welcomes it when that is OK. */
class RefusingBackend {
  readonly tokens: string[] = [];
  port = 0;
  private readonly server = new Server();

  constructor(answer: (token: string) => status) {
    this.server.addService(UplinkService, {
      connect: (call: Call) => {
        const token = String(call.metadata.get('authorization')[0] ?? '').replace(/^Bearer /, '');
        this.tokens.push(token);
        call.on('error', () => {});
        const code = answer(token);
        if (code !== status.OK) {
          const err: Partial<ServiceError> = Object.assign(new Error(`refused ${token}`), { code, details: `refused ${token}` });
          call.emit('error', err);
          return;
        }
        call.write({
          frame: {
            $case: 'welcome',
            value: {
              sessionId: 's',
              lastCommittedSeq: 0,
              answersHeartbeats: false,
              limits: { maxBatchRecords: 0, maxBatchBytes: 0, maxBatchesInFlight: 0 },
            },
          },
        });
      },
    });
  }

  async start(): Promise<void> {
    this.port = await new Promise((resolve, reject) =>
      this.server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, port) =>
        err ? reject(err) : resolve(port),
      ),
    );
  }

  stop(): void {
    this.server.forceShutdown();
  }
}

describe('uplink auth refusals', function () {
  this.timeout(20_000);
  const dir = useTempDir();
  let journal: SqliteJournal | undefined;
  let backend: RefusingBackend | undefined;
  let uplink: Uplink | undefined;
  let time: FakeTime;
  let token: string;

  beforeEach(() => {
    time = fakeTime(1_700_000_000_000);
    token = 'token-1';
  });
  afterEach(() => {
    uplink?.close();
    uplink = undefined;
    backend?.stop();
    backend = undefined;
    journal?.close();
    journal = undefined;
  });

  const start = async (b: RefusingBackend, settings: Partial<UplinkSettings> = {}) => {
    backend = b;
    await b.start();
    journal = new SqliteJournal({ dir: dir.path, durability: 'process' });
    const j = journal;
    uplink = new Uplink({
      ...DEFAULT_UPLINK_SETTINGS,
      reconnectMaxMs: 100,
      refusedRetryMs: 60_000,
      ...settings,
      target: `127.0.0.1:${b.port}`,
      gatewayId: 'gw-test',
      version: 'test',
      journal: j,
      onReleased: (range) => j.commit([], [range]),
      getToken: () => token,
      logger: silentLogger,
      timers: time.timers,
      clock: time.clock,
    });
    uplink.start();
    return uplink;
  };

  /** Lets `ms` of fake time pass, a backoff step at a time, so that every timer due runs. */
  const pass = (ms: number) => {
    for (let left = ms; left > 0; left -= 100) time.tick(Math.min(100, left));
  };

  it('uplink - is-retryable: UNAUTHENTICATED and PERMISSION_DENIED are refusals, every other failure is retried on the usual backoff', () => {
    const coded = (code: status) => Object.assign(new Error(status[code]), { code });
    assert.equal(authRefusal(coded(status.UNAUTHENTICATED)), 'UNAUTHENTICATED');
    assert.equal(authRefusal(coded(status.PERMISSION_DENIED)), 'PERMISSION_DENIED');
    for (const code of [
      status.UNAVAILABLE,
      status.DEADLINE_EXCEEDED,
      status.RESOURCE_EXHAUSTED,
      status.INTERNAL,
      status.CANCELLED,
    ])
      assert.ok(isRetryable(coded(code)), status[code]);
    assert.ok(isRetryable(new Error('the backend ended the stream')));
    assert.ok(!isRetryable(coded(status.UNAUTHENTICATED)));
  });

  for (const code of [status.UNAUTHENTICATED, status.PERMISSION_DENIED]) {
    it(`uplink - a backend answering ${status[code]} is tried again only after refusedRetryMs, and the uplink shows it is refused (fake time)`, async () => {
      const up = await start(new RefusingBackend(() => code));
      await waitUntil('the first refusal', () => up.stats().failures === 1);
      const refusedAt = time.clock.now();
      const stats = up.stats();
      assert.equal(stats.state, ConnectivityState.TRANSIENT_FAILURE);
      assert.deepEqual(stats.refused, { status: status[code], sinceMs: refusedAt, retryAtMs: refusedAt + 60_000 });
      assert.match(stats.lastError ?? '', new RegExp(`${status[code]}: refused token-1`));

      pass(59_900); // the usual backoff would have tried hundreds of times by now
      await new Promise((resolve) => setTimeout(resolve, 100)); // room for a stream, had one been opened
      assert.deepEqual([up.stats().sessions, backend!.tokens.length], [1, 1], 'no attempt while refused');

      pass(300);
      await waitUntil('the second attempt, refused again', () => up.stats().failures === 2);
      assert.equal(backend!.tokens.length, 2);
      assert.equal(up.stats().refused?.sinceMs, refusedAt, 'refused since the first refusal');
    });
  }

  it('uplink - a refused token replaced (its file rewritten) is tried at the pace of the usual backoff; streaming clears the refusal (fake time)', async () => {
    const up = await start(new RefusingBackend((t) => (t === 'token-2' ? status.OK : status.UNAUTHENTICATED)));
    await waitUntil('the first refusal', () => up.stats().refused !== null);
    token = 'token-2';
    pass(200);
    await up.connectivity.waitFor(ConnectivityState.READY);
    assert.deepEqual(backend!.tokens, ['token-1', 'token-2']);
    assert.equal(up.stats().refused, null);
  });

  it('uplink - a session ended with UNAUTHENTICATED after its token was already replaced is retried on the usual backoff, not as a refusal', async () => {
    const up = await start(new RefusingBackend((t) => (t === 'token-2' ? status.OK : status.UNAUTHENTICATED)));
    token = 'token-2'; // before the refusal of token-1 comes back: it says nothing about token-2
    await waitUntil('the refusal of token-1', () => up.stats().failures === 1);
    assert.equal(up.stats().refused, null);
    pass(200);
    await up.connectivity.waitFor(ConnectivityState.READY);
  });

  it('uplink - UNAVAILABLE is retried on the usual backoff, and is no refusal (fake time)', async () => {
    let answer = status.UNAVAILABLE;
    const up = await start(new RefusingBackend(() => answer));
    await waitUntil('the first failure', () => up.stats().failures === 1);
    assert.equal(up.stats().refused, null);
    answer = status.OK;
    pass(200);
    await up.connectivity.waitFor(ConnectivityState.READY);
    assert.equal(backend!.tokens.length, 2);
  });

  it('metrics - fleetgate_upstream_refused is 1 for the status an upstream refuses with, 0 otherwise', async () => {
    const stats = gatewayStats();
    stats.upstreams = [
      upstream('primary'),
      upstream('archive', {
        state: ConnectivityState.TRANSIENT_FAILURE,
        refused: { status: 'PERMISSION_DENIED', sinceMs: 1, retryAtMs: 2 },
      }),
    ];
    const metrics = new GatewayMetrics({ stats: async () => stats }, { processMetrics: false });
    const text = await metrics.render();
    const value = (labels: string) => new RegExp(`^fleetgate_upstream_refused\\{${labels}\\} (\\d+)$`, 'm').exec(text)?.[1];
    assert.equal(value('upstream="archive",status="PERMISSION_DENIED"'), '1');
    assert.equal(value('upstream="archive",status="UNAUTHENTICATED"'), '0');
    assert.equal(value('upstream="primary",status="PERMISSION_DENIED"'), '0');
    assert.match(text, /# TYPE fleetgate_upstream_refused gauge/);
  });
});

describe('uplink auth refusals (gateway and cloud-stub)', function () {
  this.timeout(30_000);
  const dir = useTempDir();
  let stack: InProcessStack | undefined;
  afterEach(async () => {
    await stack?.close();
    stack = undefined;
  });

  it('uplink - a gateway whose token is for another gateway shows PERMISSION_DENIED as refused in /v1/stats and /metrics, and streams once its file holds its own', async () => {
    const keys = await makeFleetKeys(join(dir.path, 'keys'));
    const tokenFile = join(dir.path, 'gw.token');
    writeFileSync(tokenFile, await keys.gateway('gw-other'));
    const auth = new TokenGatewayAuth(
      new TokenVerifier({
        key: await loadVerifyingKey({ keyFile: keys.publicKeyFile, field: '--gateway-key' }),
        audience: GATEWAY_AUDIENCE,
      }),
    );
    stack = await startInProcess(
      dir.path,
      { upstream: { tokenFile }, uplink: { ...DEFAULT_UPLINK_SETTINGS, reconnectMaxMs: 200 } },
      { auth },
    );
    const upstream = await waitUntil('the refusal in the stats', async () => {
      const u = (await stack!.gateway.stats()).upstreams[0]!;
      return u.refused && u;
    });
    assert.equal(upstream.refused?.status, 'PERMISSION_DENIED');
    assert.ok(upstream.refused!.retryAtMs - upstream.refused!.sinceMs >= DEFAULT_UPLINK_SETTINGS.refusedRetryMs);
    const admin = stack.gateway.adminAddress!;
    const metrics = await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text();
    assert.match(metrics, /^fleetgate_upstream_refused\{upstream="default",status="PERMISSION_DENIED"\} 1$/m);
    const v1 = (await (await fetch(`http://127.0.0.1:${admin.port}/v1/stats`)).json()) as {
      upstreams: Array<{ refused: unknown }>;
    };
    assert.equal((v1.upstreams[0]!.refused as { status: string }).status, 'PERMISSION_DENIED');

    writeFileSync(tokenFile, await keys.gateway('gw-test'));
    await waitUntil('streaming with its own token', async () => (await stack!.gateway.stats()).upstreams[0]!.state === 'ready');
    assert.equal((await stack.gateway.stats()).upstreams[0]!.refused, null);
  });
});
