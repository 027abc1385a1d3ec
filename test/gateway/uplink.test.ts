/** The uplink against a scripted backend: a real grpc-js server whose behaviour each test chooses. */
import assert from 'node:assert/strict';
import { Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { ConnectivityState } from '@fleetgate/core';
import { silentLogger } from '@fleetgate/common';
import {
  UplinkService,
  type DownlinkFrame,
  type Gap,
  type Heartbeat,
  type Hello,
  type Limits,
  type RecordRejection,
  type TelemetryRecord,
  type UplinkFrame,
} from '@fleetgate/protos';
import { SqliteJournal } from '../../gateway/src/journal/sqlite/journal-sqlite.ts';
import { DEFAULT_UPLINK_SETTINGS, Uplink, type UplinkSettings } from '../../gateway/src/uplink/uplink.ts';
import { fakeTime, type FakeTime } from '../support/fake-time.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { waitUntil } from '../support/test-device.ts';
import { record } from './journal.contract.ts';
import type { SeqRange } from '../../gateway/src/journal/journal.ts';

type Call = ServerDuplexStream<UplinkFrame, DownlinkFrame>;

/** One stream as the scripted backend saw it. */
class Session {
  hello: Hello | undefined;
  readonly batches: TelemetryRecord[][] = [];
  readonly gaps: Gap[] = [];
  readonly heartbeats: Heartbeat[] = [];
  acksSent = 0;
  constructor(readonly call: Call) {}
  welcome(limits: Partial<Limits> = {}, answersHeartbeats = false): void {
    this.call.write({
      frame: {
        $case: 'welcome',
        value: {
          sessionId: 's',
          lastCommittedSeq: 0,
          answersHeartbeats,
          limits: { maxBatchRecords: 0, maxBatchBytes: 0, maxBatchesInFlight: 0, ...limits },
        },
      },
    });
  }
  /** Acks batch `index` (default: the last one received) by its range, as the cloud-stub does, and gives its credit back. */
  ack(index = this.batches.length - 1, rejected: RecordRejection[] = [], credit = 1): void {
    const batch = this.batches[index]!;
    this.ackRange(batch[0]!.seq, batch.at(-1)!.seq, rejected);
    if (credit > 0) this.credit(credit);
  }
  ackRange(fromSeq: number, throughSeq: number, rejected: RecordRejection[] = []): void {
    this.acksSent++;
    this.call.write({ frame: { $case: 'ack', value: { fromSeq, throughSeq, rejected } } });
  }
  credit(batches: number): void {
    this.call.write({ frame: { $case: 'credit', value: { batches } } });
  }
  get records(): number[] {
    return this.batches.flat().map((r) => r.seq);
  }
}

class ScriptedBackend {
  readonly sessions: Session[] = [];
  private readonly server = new Server();
  port = 0;

  /** `onHello` decides what the backend does when a stream says Hello; `onBatch` when a batch comes. */
  constructor(
    private readonly onHello: (session: Session, index: number) => void,
    private readonly onBatch: (session: Session, index: number) => void = () => {},
    private readonly onGap: (session: Session, index: number) => void = () => {},
    private readonly onHeartbeat: (session: Session, heartbeat: Heartbeat) => void = () => {},
  ) {
    this.server.addService(UplinkService, {
      connect: (call: Call) => {
        const session = new Session(call);
        const index = this.sessions.push(session) - 1;
        call.on('error', () => {});
        call.on('data', ({ frame }: UplinkFrame) => {
          if (frame?.$case === 'hello') {
            session.hello = frame.value;
            this.onHello(session, index);
          } else if (frame?.$case === 'batch') {
            session.batches.push(frame.value.records);
            this.onBatch(session, index);
          } else if (frame?.$case === 'gap') {
            session.gaps.push(frame.value);
            this.onGap(session, index);
          } else if (frame?.$case === 'heartbeat') {
            session.heartbeats.push(frame.value);
            this.onHeartbeat(session, frame.value);
          }
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

describe('uplink', function () {
  this.timeout(20_000);
  const dir = useTempDir();
  let journal: SqliteJournal;
  let backend: ScriptedBackend | undefined;
  let uplink: Uplink | undefined;
  let released: SeqRange[];
  let deadLetters: Array<{ seq: number; reason: string }>;

  beforeEach(() => {
    journal = new SqliteJournal({ dir: dir.path, durability: 'process' });
    released = [];
    deadLetters = [];
  });
  afterEach(() => {
    uplink?.close();
    backend?.stop();
    journal.close();
  });

  const fill = (count: number, payloadBytes = 10) => {
    journal.commit(Array.from({ length: count }, (_, i) => record('d', i + 1, payloadBytes)));
  };

  const start = async (b: ScriptedBackend, settings: Partial<UplinkSettings> = {}, time?: FakeTime) => {
    backend = b;
    await b.start();
    uplink = new Uplink({
      ...DEFAULT_UPLINK_SETTINGS,
      reconnectMaxMs: 50,
      ...settings,
      target: `127.0.0.1:${b.port}`,
      gatewayId: 'gw-test',
      version: 'test',
      journal,
      // What the pipeline does: free the range in the journal (which the next Hello's lastAckedSeq comes from).
      onReleased: (range) => {
        released.push(range);
        journal.commit([], [range]);
      },
      onDeadLetter: (r, reason) => {
        deadLetters.push({ seq: r.seq, reason });
        journal.commit([], [{ from: r.seq, to: r.seq }]);
      },
      logger: silentLogger,
      ...(time ? { timers: time.timers, clock: time.clock } : {}),
    });
    uplink.start();
    return uplink;
  };

  const seqs = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
  const allReleased = (through: number) => journal.ackedThrough === through && journal.stats().rows === 0;

  it('uplink - after the backend ends the stream it reconnects, says Hello with the low-water mark and resends the rest', async () => {
    fill(30);
    const up = await start(
      new ScriptedBackend(
        (s) => s.welcome(),
        (s, index) => {
          if (index === 0 && s.batches.length === 1) s.ack();
          if (index === 0 && s.batches.length === 3) s.call.end();
          if (index === 1) s.ack();
        },
      ),
      // A window of 5 leaves the backlog 3 batches in flight (2 are kept for live data).
      { maxBatchRecords: 10, window: 5 },
    );
    await waitUntil('everything acked', () => allReleased(30));
    const [first, second] = backend!.sessions;
    assert.deepEqual(first!.records, seqs(1, 30));
    assert.equal(second!.hello?.lastAckedSeq, 10);
    assert.deepEqual(second!.records, seqs(11, 30));
    assert.deepEqual(released, [
      { from: 1, to: 10 },
      { from: 11, to: 20 },
      { from: 21, to: 30 },
    ]);
    const stats = up.stats();
    assert.equal(stats.recordsResent, 20);
    assert.equal(stats.sessions, 2);
    assert.equal(stats.state, 'ready');
  });

  it('uplink - an ack for seqs never sent is a protocol error: the session is dropped and retried, nothing freed', async () => {
    fill(5);
    const up = await start(
      new ScriptedBackend(
        (s) => s.welcome(),
        (s, index) => {
          if (index === 0) s.ackRange(0, 999);
          else if (index === 1)
            s.ackRange(2, 3); // not the range of any batch
          else s.ack();
        },
      ),
    );
    await waitUntil('acked by the third session', () => allReleased(5));
    assert.deepEqual(released, [{ from: 1, to: 5 }]);
    assert.equal(up.stats().sessions, 3);
    assert.match(up.stats().lastError ?? '', /protocol error: ack for 2\.\.3, which is no batch or gap in flight/);
  });

  it('uplink - a cumulative ack (from 0) frees only what was sent without a hole', async () => {
    fill(5);
    const up = await start(
      new ScriptedBackend(
        (s) => s.welcome(),
        (s, index) => (index === 0 ? s.ackRange(0, 6) : s.ackRange(0, 5)),
      ),
    );
    await waitUntil('acked by the second session', () => allReleased(5));
    assert.equal(up.stats().sessions, 2);
    assert.match(up.stats().lastError ?? '', /protocol error: ack through 6, but only 5 was sent without a hole/);
  });

  it('uplink - no Welcome in time: the session is given up and a new one tried', async () => {
    fill(1);
    const up = await start(
      new ScriptedBackend(
        (s, index) => index > 0 && s.welcome(),
        (s) => s.ack(),
      ),
      { welcomeTimeoutMs: 200 },
    );
    await waitUntil('acked', () => allReleased(1));
    assert.match(up.stats().lastError ?? '', /no Welcome within 200 ms/);
    assert.equal(backend!.sessions[0]!.batches.length, 0, 'nothing is sent before Welcome');
  });

  it("uplink - the backend's limits narrow the batch size, and its credit bounds the batches in flight", async () => {
    fill(40);
    let maxUnacked = 0;
    await start(
      new ScriptedBackend(
        (s) => s.welcome({ maxBatchRecords: 7, maxBatchesInFlight: 1 }),
        (s) => {
          maxUnacked = Math.max(maxUnacked, s.batches.length - s.acksSent);
          setTimeout(() => s.ack(), 5);
        },
      ),
      { maxBatchRecords: 500, window: 8 },
    );
    await waitUntil('everything acked', () => allReleased(40));
    const batches = backend!.sessions[0]!.batches;
    assert.ok(
      batches.every((b) => b.length <= 7),
      `batch sizes ${batches.map((b) => b.length)}`,
    );
    assert.equal(maxUnacked, 1);
  });

  it('uplink - without credit nothing is sent, even with every batch acked; a Credit frame lets more go', async () => {
    fill(50);
    const up = await start(
      new ScriptedBackend(
        (s) => s.welcome({ maxBatchesInFlight: 2 }),
        (s) => s.ack(undefined, [], 0),
      ),
      { maxBatchRecords: 10 },
    );
    await waitUntil('two batches acked', () => journal.ackedThrough === 20);
    // The ack that freed rows 11..20 ran the sender synchronously: had it wanted to send more, it would have.
    assert.equal(up.stats().batchesSent, 2);
    assert.equal(up.stats().credit, 0);
    const session = backend!.sessions[0]!;
    session.credit(3);
    await waitUntil('everything acked', () => allReleased(50));
    assert.equal(session.batches.length, 5);
  });

  it('uplink - live first: what is committed after Welcome overtakes the backlog, which drains with the credit left', async () => {
    fill(100); // the backlog: seqs 1..100, in the journal before the session starts
    let acking = false;
    const up = await start(
      new ScriptedBackend(
        (s) => s.welcome({ maxBatchesInFlight: 3 }),
        (s) => {
          if (acking) s.ack();
        },
      ),
      { maxBatchRecords: 10 },
    );
    const session = await waitUntil(
      'the first backlog batch',
      () => backend!.sessions[0]?.batches.length === 1 && backend!.sessions[0],
    );
    // Credit 3 less the 2 kept for live data: the backlog has one batch in flight and waits for it.
    assert.deepEqual(session.records, seqs(1, 10));
    journal.commit([record('live', 1), record('live', 2)]);
    up.wake();
    await waitUntil('the live batch', () => session.batches.length === 2);
    assert.deepEqual(
      session.batches[1]!.map((r) => r.seq),
      [101, 102],
      'live data did not wait behind the backlog',
    );
    acking = true;
    session.ack(0);
    session.ack(1);
    await waitUntil('the backlog drained', () => allReleased(102));
    assert.deepEqual(
      session.batches
        .slice(2)
        .flat()
        .map((r) => r.seq),
      seqs(11, 100),
      'the backlog in seq order',
    );
    const stats = up.stats();
    assert.deepEqual(stats.lanes, { liveFrom: 100, liveSentThrough: 102, backlogSentThrough: 100, backlogRemaining: false });
  });

  it('uplink - the backlog keeps at most backlogWindow batches in flight, however much credit is left', async () => {
    fill(100);
    let acking = false;
    const up = await start(
      new ScriptedBackend(
        (s) => s.welcome({ maxBatchesInFlight: 16 }),
        (s) => {
          if (acking) s.ack();
        },
      ),
      { maxBatchRecords: 10, backlogWindow: 2 },
    );
    const session = await waitUntil(
      'two backlog batches',
      () => backend!.sessions[0]?.batches.length === 2 && backend!.sessions[0],
    );
    journal.commit([record('live', 1)]);
    up.wake();
    await waitUntil('the live batch', () => session.batches.length === 3);
    assert.deepEqual(
      session.batches[2]!.map((r) => r.seq),
      [101],
      'the third batch is live data, not more backlog',
    );
    assert.equal(up.stats().batchesInFlight, 3);
    assert.equal(up.stats().credit, 13, 'credit was left unused by the backlog');
    acking = true;
    for (let i = 0; i < 3; i++) session.ack(i);
    await waitUntil('the backlog drained', () => allReleased(101));
    assert.deepEqual(
      session.batches
        .slice(3)
        .flat()
        .map((r) => r.seq),
      seqs(21, 100),
    );
  });

  it('uplink - a record the backend rejects is resent maxAttempts times in all, then dead-lettered; the stream goes on', async () => {
    fill(6);
    const up = await start(
      new ScriptedBackend(
        (s) => s.welcome(),
        (s) => {
          const batch = s.batches.at(-1)!;
          s.ack(undefined, batch.some((r) => r.seq === 3) ? [{ seq: 3, reason: 'not JSON' }] : []);
        },
      ),
      { maxAttempts: 3 },
    );
    await waitUntil('everything released or dead-lettered', () => allReleased(6));
    const session = backend!.sessions[0]!;
    assert.equal(session.records.filter((seq) => seq === 3).length, 3, 'sent 3 times');
    assert.deepEqual(deadLetters, [{ seq: 3, reason: 'not JSON' }]);
    assert.deepEqual(
      released.slice(0, 2),
      [
        { from: 1, to: 2 },
        { from: 4, to: 6 },
      ],
      'the rest of the batch was freed at once',
    );
    assert.equal(up.stats().sessions, 1, 'no reconnect needed');
    journal.commit([record('d', 7)]);
    up.wake();
    await waitUntil('a later record goes through', () => allReleased(7));
  });

  it('uplink - gaps go up before any batch, once per session, and are forgotten once acked', async () => {
    journal.close();
    journal = new SqliteJournal({
      dir: dir.path,
      durability: 'process',
      limits: { maxBytes: 100, maxAgeMs: 0, policy: 'drop-oldest' },
    });
    fill(20); // 200 bytes: the oldest rows are dropped down to 95 bytes
    const gap = journal.gaps()[0]!;
    assert.deepEqual([gap.from, gap.to, gap.reason], [1, 11, 'journal-full']);
    let first: string | undefined;
    await start(
      new ScriptedBackend(
        (s) => s.welcome(),
        (s) => {
          first ??= 'batch';
          s.ack();
        },
        (s) => {
          first ??= 'gap';
          s.ackRange(s.gaps[0]!.fromSeq, s.gaps[0]!.toSeq);
        },
      ),
    );
    await waitUntil('everything acked', () => allReleased(20) && journal.gaps().length === 0);
    const session = backend!.sessions[0]!;
    assert.equal(first, 'gap');
    assert.deepEqual(
      session.gaps.map(({ timeMs, ...g }) => g),
      [{ fromSeq: 1, toSeq: 11, reason: 'journal-full', count: 11 }],
    );
    assert.deepEqual(session.records, seqs(12, 20));
  });

  it('uplink - when the stream takes no more it waits for drain instead of buffering without bound', async () => {
    fill(200, 64 * 1024); // 12.5 MiB of payload
    let reading = true;
    const up = await start(
      new ScriptedBackend(
        (s) => {
          s.welcome();
          s.call.pause(); // a backend that stopped reading: HTTP/2 flow control pushes back on the gateway
          reading = false;
        },
        (s) => s.ack(),
      ),
      { window: 1000, backlogWindow: 1000, maxBatchRecords: 4 },
    );
    await waitUntil('the sender to block on drain', () => up.stats().drainWaits > 0);
    assert.equal(reading, false);
    const blockedAt = up.stats().recordsSent;
    assert.ok(blockedAt < 200, `sent ${blockedAt} of 200 while the backend read nothing`);
    backend!.sessions[0]!.call.resume();
    await waitUntil('everything acked once the backend reads again', () => allReleased(200));
  });

  it('uplink - Hello says the heartbeat interval: half of deadAfterMs', async () => {
    await start(new ScriptedBackend((s) => s.welcome()), { deadAfterMs: 8_000 });
    const session = await waitUntil('Hello', () => backend!.sessions[0]?.hello && backend!.sessions[0]);
    assert.equal(session.hello?.heartbeatIntervalMs, 4_000);
  });

  it('uplink - a backend that answers heartbeats is asked after deadAfterMs / 2 of silence and given up after deadAfterMs (fake time)', async () => {
    const time = fakeTime();
    const up = await start(new ScriptedBackend((s) => s.welcome({}, true)), { deadAfterMs: 10_000 }, time);
    await up.connectivity.waitFor(ConnectivityState.READY);
    time.tick(4_999);
    assert.equal(up.stats().heartbeatsSent, 0);
    time.tick(1);
    assert.equal(up.stats().heartbeatsSent, 1);
    const session = await waitUntil(
      'the Heartbeat at the backend',
      () => backend!.sessions[0]?.heartbeats.length === 1 && backend!.sessions[0],
    );
    assert.deepEqual(session.heartbeats[0], { id: 1, timeMs: time.clock.now() });
    time.tick(4_999);
    assert.equal(up.state, ConnectivityState.READY);
    assert.equal(up.stats().heartbeatsSent, 1, 'one Heartbeat per silent spell');
    time.tick(1);
    assert.equal(up.state, ConnectivityState.TRANSIENT_FAILURE);
    assert.match(
      up.stats().lastError ?? '',
      /the backend sent nothing for 10000 ms, not even a heartbeat answer \(dead after 10000 ms\)/,
    );
  });

  it('uplink - answered heartbeats keep a silent stream up; any frame counts as heard (fake time)', async () => {
    const time = fakeTime();
    const up = await start(
      new ScriptedBackend(
        (s) => s.welcome({}, true),
        undefined,
        undefined,
        (s, heartbeat) => s.call.write({ frame: { $case: 'heartbeat', value: heartbeat } }),
      ),
      { deadAfterMs: 10_000 },
      time,
    );
    await up.connectivity.waitFor(ConnectivityState.READY);
    for (let i = 1; i <= 12; i++) {
      time.tick(5_000); // a minute in all: each spell of 5 s sends one, answered before the next tick
      await waitUntil(`answer ${i}`, () => up.stats().heartbeatsAnswered === i);
    }
    const session = backend!.sessions[0]!;
    session.credit(1); // not a heartbeat answer, but the backend is heard: the next Heartbeat waits 5 s from here
    await waitUntil('the Credit heard', () => up.stats().credit === DEFAULT_UPLINK_SETTINGS.window + 1);
    time.tick(4_999);
    assert.equal(up.stats().heartbeatsSent, 12);
    assert.deepEqual([up.state, up.stats().sessions], [ConnectivityState.READY, 1]);
  });

  it('uplink - a backend that does not say answers_heartbeats gets no Heartbeat and is never given up for silence (fake time)', async () => {
    const time = fakeTime();
    const up = await start(new ScriptedBackend((s) => s.welcome()), { deadAfterMs: 10_000 }, time);
    await up.connectivity.waitFor(ConnectivityState.READY);
    time.tick(10 * 60_000);
    assert.deepEqual([up.state, up.stats().heartbeatsSent, up.stats().sessions], [ConnectivityState.READY, 0, 1]);
  });

  it("uplink - a Credit before Welcome is ignored (Welcome sets the first grant); max_batches_in_flight 0 means the gateway's own window", async () => {
    fill(100);
    const up = await start(
      new ScriptedBackend((s, index) => {
        if (index === 0) {
          s.credit(50);
          s.welcome({ maxBatchesInFlight: 1 });
        } else {
          s.welcome({ maxBatchesInFlight: 0 });
        }
      }),
      { maxBatchRecords: 10, window: 5, backlogWindow: 5 },
    );
    await waitUntil('the first batch', () => backend!.sessions[0]?.batches.length === 1);
    assert.deepEqual([up.stats().credit, up.stats().batchesInFlight], [0, 1], 'only the grant of Welcome');
    up.restart('next session');
    await waitUntil('the second session streaming', () => backend!.sessions[1]?.batches.length === 3);
    // The backlog keeps 2 of the credit for live data: 5 (the window) - 2 = 3 batches, and 2 credits left.
    assert.deepEqual([up.stats().credit, up.stats().batchesInFlight], [2, 3]);
  });
});
