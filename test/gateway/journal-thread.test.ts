/**
 * The journal thread in this thread: JournalThread on one end of a MessageChannel, the Pipeline on the other,
 * so that the worker RPC, the packed records and the thread's wiring run as in the gateway, without a worker.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { silentLogger } from '@fleetgate/common';
import { CloudStub } from '@fleetgate/cloud-stub';
import { DEFAULT_GROUP_COMMIT } from '../../gateway/src/journal/group-commit.ts';
import { NO_LIMITS, type JournalLimits } from '../../gateway/src/journal/journal.ts';
import { JOURNAL_FILE } from '../../gateway/src/journal/sqlite/journal-sqlite.ts';
import { JournalThread } from '../../gateway/src/pipeline/journal-thread.ts';
import { JournalError, JournalFullError, PipelineError } from '../../gateway/src/errors.ts';
import type { PipelineSettings } from '../../gateway/src/pipeline/pipeline-protocol.ts';
import { Pipeline } from '../../gateway/src/pipeline/pipeline.ts';
import { DEFAULT_UPLINK_SETTINGS } from '../../gateway/src/uplink/uplink.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { waitUntil } from '../support/test-device.ts';
import { record } from './journal.contract.ts';

describe('journal thread (in-process, over a MessageChannel)', function () {
  this.timeout(30_000);
  const dir = useTempDir();
  let cloud: CloudStub | undefined;
  let pipeline: Pipeline | undefined;
  let ports: MessagePort[] = [];

  afterEach(async () => {
    await pipeline?.close();
    pipeline = undefined;
    for (const port of ports) port.close();
    ports = [];
    await cloud?.close();
    cloud = undefined;
  });

  const settings = (target: string, limits: JournalLimits = NO_LIMITS): PipelineSettings => ({
    gatewayId: 'gw-test',
    version: 'test',
    dataDir: join(dir.path, 'gateway'),
    durability: 'process',
    groupCommit: DEFAULT_GROUP_COMMIT,
    limits,
    tailCacheBytes: 1 << 20,
    uplink: { ...DEFAULT_UPLINK_SETTINGS, reconnectMaxMs: 200 },
    upstreams: [{ name: 'default', target }],
    routes: [],
    forgetUpstreams: [],
    logLevel: 'silent',
  });

  /** The thread on port2, the pipeline on port1; `stop` closes the MQTT thread's end, as terminate() would. */
  const attach = (s: PipelineSettings) => {
    const { port1, port2 } = new MessageChannel();
    ports.push(port1, port2);
    const opened = Pipeline.attach(port1, async () => port1.close());
    let thread: JournalThread | undefined;
    let openError: unknown;
    try {
      thread = JournalThread.open(s, port2, { logger: silentLogger });
    } catch (err: unknown) {
      openError = err;
    }
    return { opened, thread, openError };
  };

  const append = (p: Pipeline, n: number, payloadBytes = 16) =>
    Promise.all(
      Array.from(
        { length: n },
        (_, i) =>
          new Promise<void>((resolve, reject) =>
            p.append(record('dev-1', i + 1, payloadBytes), (err) => (err ? reject(err) : resolve())),
          ),
      ),
    );

  it('journal thread - appends are durable, stream to the backend, and the acks free their rows; stats and close go through the RPC', async () => {
    cloud = await CloudStub.start({
      listen: { host: '127.0.0.1', port: 0 },
      dataDir: join(dir.path, 'cloud'),
      durability: 'process',
    });
    pipeline = await attach(settings(`127.0.0.1:${cloud.address.port}`)).opened;
    await append(pipeline, 500);
    const stats = await pipeline.stats();
    assert.equal(stats.journal.lastSeq, 500);
    assert.equal(stats.journal.committedRows, 500);
    await waitUntil('acked by the backend and freed', async () => {
      const { journal, upstreams } = await pipeline!.stats();
      return journal.rows === 0 && journal.ackedThrough === 500 && upstreams[0]!.state === 'ready';
    });
    assert.equal((await cloud.stats()).records, 500);
    assert.equal(await pipeline.lastDeviceSeq('dev-1', ''), 0);
    await pipeline.close();
    pipeline = undefined;
  });

  it('journal thread - a refused append comes back as JournalFullError, with its reason (errors cross the thread as their class)', async () => {
    pipeline = await attach(settings('127.0.0.1:1', { maxBytes: 1000, maxAgeMs: 0, policy: 'reject-new' })).opened;
    await append(pipeline, 10, 100);
    const err = await append(pipeline, 1, 100).catch((e: unknown) => e);
    assert.ok(err instanceof JournalFullError, String(err));
    assert.equal(err.reason, 'limit');
  });

  it('journal thread - a journal that cannot be opened fails the start with PipelineError, its cause the JournalError', async () => {
    const s = settings('127.0.0.1:1');
    mkdirSync(s.dataDir, { recursive: true });
    const db = new Database(join(s.dataDir, JOURNAL_FILE));
    db.pragma('user_version = 99');
    db.close();
    const { opened, thread, openError } = attach(s);
    assert.equal(thread, undefined);
    assert.ok(openError instanceof JournalError, 'the thread throws (a worker exits)');
    const err = await opened.catch((e: unknown) => e);
    assert.ok(err instanceof PipelineError, String(err));
    assert.match(err.message, /cannot open the journal in .*: .* has journal schema 99/);
    assert.ok(err.cause instanceof JournalError, 'the cause crossed as its class');
  });
});
