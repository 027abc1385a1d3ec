/**
 * The uplink against a stock grpc-core server (Python grpcio, python/uplink_backend.py) on grpc-core's default
 * ping policy: grpc.http2.min_ping_interval_without_data_ms 300000, grpc.http2.max_ping_strikes 2. A grpc-js
 * server takes those options and ignores them (checked with grpc-js 1.14: 30 pings in 3 s on an idle stream,
 * no GOAWAY), so the policy can only be met here on grpc-core.
 *
 * Time is scaled down 300 times so that "idle for several ping intervals" takes seconds: the server permits a
 * ping every 1000 ms (5 minutes), the gateway pings every 1100 ms (KEEPALIVE_TIME_MS, 5.5 minutes), and the old
 * gateway pinged every 33 ms (10 s). Heartbeats and dead-peer detection do not depend on the ping policy and
 * use their own short settings.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { logVerbosity, setLogVerbosity } from '@grpc/grpc-js';
import { ConnectivityState } from '@fleetgate/core';
import { silentLogger } from '@fleetgate/common';
import { SqliteJournal } from '../../gateway/src/journal/sqlite/journal-sqlite.ts';
import { DEFAULT_UPLINK_SETTINGS, KEEPALIVE_TIME_MS, Uplink, type UplinkSettings } from '../../gateway/src/uplink/uplink.ts';
import { buildDescriptorSet, PythonBackend } from '../support/python-backend.ts';
import { PYTHON_GRPCIO, requireProgram } from '../support/system-packages.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { waitUntil } from '../support/test-device.ts';
import { record } from './journal.contract.ts';

const SCALE = 300;
const POLICY = { minPingIntervalMs: 300_000 / SCALE, maxPingStrikes: 2 };
const NEW_KEEPALIVE_MS = Math.round(KEEPALIVE_TIME_MS / SCALE);
const OLD_KEEPALIVE_MS = Math.round(10_000 / SCALE);
/** Idle this long: five of the server's ping intervals. */
const IDLE_MS = 5 * POLICY.minPingIntervalMs;

describe('uplink keepalive (grpc-core server)', function () {
  this.timeout(30_000);
  const dir = useTempDir();
  let descriptors: string;
  let backend: PythonBackend | undefined;
  let uplink: Uplink | undefined;
  let journal: SqliteJournal | undefined;

  before(function () {
    requireProgram(this, PYTHON_GRPCIO);
  });
  beforeEach(() => {
    descriptors = join(dir.path, 'fleetgate.binpb');
    buildDescriptorSet(descriptors);
  });
  afterEach(async () => {
    uplink?.close();
    uplink = undefined;
    journal?.close();
    journal = undefined;
    await backend?.stop();
    backend = undefined;
  });

  const start = async (heartbeats: boolean, settings: Partial<UplinkSettings>) => {
    backend = await PythonBackend.start({ descriptors, ...POLICY, heartbeats });
    journal = new SqliteJournal({ dir: dir.path, durability: 'process' });
    journal.commit(Array.from({ length: 5 }, (_, i) => record('d', i + 1)));
    const j = journal;
    uplink = new Uplink({
      ...DEFAULT_UPLINK_SETTINGS,
      reconnectMaxMs: 200,
      ...settings,
      target: `127.0.0.1:${backend.port}`,
      gatewayId: 'gw-py',
      version: 'test',
      journal: j,
      onReleased: (range) => j.commit([], [range]),
      logger: silentLogger,
    });
    uplink.start();
    await waitUntil('the first records acked by the Python backend', () => j.ackedThrough === 5, 10_000, 20);
    return uplink;
  };

  /** Resolves after `ms` if the uplink stayed READY all along; rejects at the first state change. */
  const staysReady = (up: Uplink, ms: number) =>
    new Promise<void>((resolve, reject) => {
      const onState = ({ state, reason }: { state: string; reason?: string }) => {
        clearTimeout(timer);
        reject(new Error(`the uplink went ${state} while idle: ${reason}; backend log:\n${backend?.log}`));
      };
      const timer = setTimeout(() => {
        up.connectivity.off('state', onState);
        resolve();
      }, ms);
      up.connectivity.on('state', onState);
    });

  it('uplink keepalive - control: the old 10 s pings (scaled) get an idle uplink cut by grpc-core with RESOURCE_EXHAUSTED (too_many_pings)', async () => {
    setLogVerbosity(logVerbosity.NONE); // grpc-js logs the GOAWAY it gets as an error: expected here
    try {
      const up = await start(false, { keepaliveTimeMs: OLD_KEEPALIVE_MS });
      await waitUntil('a session cut', () => up.stats().failures > 0, IDLE_MS * 2, 20);
      assert.match(up.stats().lastError ?? '', /RESOURCE_EXHAUSTED|Bandwidth exhausted/);
    } finally {
      setLogVerbosity(logVerbosity.ERROR);
    }
  });

  for (const heartbeats of [false, true]) {
    const which = heartbeats ? 'that answers heartbeats' : 'that knows nothing of heartbeats';
    it(`uplink keepalive - an idle uplink to a grpc-core server on its default ping policy, ${which}, stays up for 5 ping intervals with zero reconnects`, async () => {
      const up = await start(heartbeats, { keepaliveTimeMs: NEW_KEEPALIVE_MS, deadAfterMs: 400 });
      await staysReady(up, IDLE_MS);
      const stats = up.stats();
      assert.deepEqual(
        [stats.state, stats.sessions, stats.failures, backend!.streams],
        [ConnectivityState.READY, 1, 0, 1],
        stats.lastError ?? '',
      );
      if (heartbeats) {
        assert.ok(stats.heartbeatsSent >= IDLE_MS / 400, `${stats.heartbeatsSent} heartbeats sent`);
        assert.ok(
          stats.heartbeatsAnswered >= stats.heartbeatsSent - 1,
          `${stats.heartbeatsAnswered} of ${stats.heartbeatsSent} answered`,
        );
      } else {
        assert.equal(stats.heartbeatsSent, 0, 'no Heartbeat frames to a backend that did not ask for them');
      }
      // Still a working stream: a record committed now is acked.
      journal!.commit([record('d', 6)]);
      up.wake();
      await waitUntil('a record after the idle spell acked', () => journal!.ackedThrough === 6, 5_000, 20);
    });
  }

  it('uplink keepalive - a backend that stops answering (SIGSTOP) is given up within --uplink-dead-after-ms, and streamed to again once it answers', async () => {
    const deadAfterMs = 1_000;
    const up = await start(true, { keepaliveTimeMs: NEW_KEEPALIVE_MS, deadAfterMs, welcomeTimeoutMs: 1_000 });
    const stopped = Date.now();
    backend!.pause();
    await up.connectivity.waitFor(ConnectivityState.TRANSIENT_FAILURE);
    const detectedAfter = Date.now() - stopped;
    assert.match(
      up.stats().lastError ?? '',
      /the backend sent nothing for \d+ ms, not even a heartbeat answer \(dead after 1000 ms\)/,
    );
    assert.ok(detectedAfter <= deadAfterMs + 500, `detected after ${detectedAfter} ms`);
    backend!.resume();
    await waitUntil('streaming again', () => up.state === ConnectivityState.READY, 10_000, 20);
    journal!.commit([record('d', 6)]);
    up.wake();
    await waitUntil('a record after the outage acked', () => journal!.ackedThrough === 6, 5_000, 20);
  });
});
