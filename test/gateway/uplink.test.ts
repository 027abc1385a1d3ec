/** The uplink against a scripted backend: a real grpc-js server whose behaviour each test chooses. */
import assert from 'node:assert/strict';
import { Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { silentLogger } from '@fleetgate/common';
import { UplinkService, type DownlinkFrame, type Hello, type Limits, type TelemetryRecord, type UplinkFrame } from '@fleetgate/protos';
import { SqliteJournal } from '../../gateway/src/journal/journal-sqlite.ts';
import { DEFAULT_UPLINK_SETTINGS, Uplink, type UplinkSettings } from '../../gateway/src/uplink/uplink.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { waitUntil } from '../support/test-device.ts';
import { record } from './journal.contract.ts';

type Call = ServerDuplexStream<UplinkFrame, DownlinkFrame>;

/** One stream as the scripted backend saw it. */
class Session {
  hello: Hello | undefined;
  readonly batches: TelemetryRecord[][] = [];
  acksSent = 0;
  constructor(readonly call: Call) {}
  welcome(limits: Partial<Limits> = {}): void {
    this.call.write({ frame: { $case: 'welcome', value: { sessionId: 's', lastCommittedSeq: 0, limits: { maxBatchRecords: 0, maxBatchBytes: 0, maxBatchesInFlight: 0, ...limits } } } });
  }
  ack(throughSeq: number): void {
    this.acksSent++;
    this.call.write({ frame: { $case: 'ack', value: { throughSeq } } });
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
          }
        });
      },
    });
  }

  async start(): Promise<void> {
    this.port = await new Promise((resolve, reject) =>
      this.server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
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
  let acked: number[];

  beforeEach(() => {
    journal = new SqliteJournal({ dir: dir.path, durability: 'process' });
    acked = [];
  });
  afterEach(() => {
    uplink?.close();
    backend?.stop();
    journal.close();
  });

  const fill = (count: number, payloadBytes = 10) => {
    journal.commit(Array.from({ length: count }, (_, i) => record('d', i + 1, payloadBytes)));
  };

  const start = async (b: ScriptedBackend, settings: Partial<UplinkSettings> = {}) => {
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
      onAcked: (seq) => acked.push(seq),
      logger: silentLogger,
    });
    uplink.start();
    return uplink;
  };

  it('uplink - after the backend ends the stream it reconnects, says Hello with the last ack and resends the rest', async () => {
    fill(30);
    const up = await start(
      new ScriptedBackend(
        (s) => s.welcome(),
        (s, index) => {
          if (index === 0 && s.batches.length === 1) s.ack(s.records.at(-1)!);
          if (index === 0 && s.batches.length === 3) s.call.end();
          if (index === 1) s.ack(s.records.at(-1)!);
        },
      ),
      { maxBatchRecords: 10, window: 3 },
    );
    await waitUntil('everything acked', () => acked.at(-1) === 30);
    const [first, second] = backend!.sessions;
    assert.deepEqual(first!.records, Array.from({ length: 30 }, (_, i) => i + 1));
    assert.equal(second!.hello?.lastAckedSeq, 10);
    assert.deepEqual(second!.records, Array.from({ length: 20 }, (_, i) => i + 11));
    const stats = up.stats();
    assert.equal(stats.recordsResent, 20);
    assert.equal(stats.sessions, 2);
    assert.equal(stats.state, 'ready');
  });

  it('uplink - an ack for a seq never sent is a protocol error: the session is dropped and retried', async () => {
    fill(5);
    const up = await start(new ScriptedBackend((s) => s.welcome(), (s, index) => s.ack(index === 0 ? 999 : s.records.at(-1)!)));
    await waitUntil('acked by the second session', () => acked.at(-1) === 5);
    assert.equal(acked.includes(999), false);
    assert.match(up.stats().lastError ?? '', /protocol error: ack through 999, but only 5 was sent/);
    assert.equal(up.stats().sessions, 2);
  });

  it('uplink - no Welcome in time: the session is given up and a new one tried', async () => {
    fill(1);
    const up = await start(new ScriptedBackend((s, index) => index > 0 && s.welcome(), (s) => s.ack(1)), { welcomeTimeoutMs: 200 });
    await waitUntil('acked', () => acked.at(-1) === 1);
    assert.match(up.stats().lastError ?? '', /no Welcome within 200 ms/);
    assert.equal(backend!.sessions[0]!.batches.length, 0, 'nothing is sent before Welcome');
  });

  it('uplink - the backend\'s limits narrow the batch size and the window', async () => {
    fill(40);
    let maxUnacked = 0;
    await start(
      new ScriptedBackend(
        (s) => s.welcome({ maxBatchRecords: 7, maxBatchesInFlight: 1 }),
        (s) => {
          maxUnacked = Math.max(maxUnacked, s.batches.length - s.acksSent);
          setTimeout(() => s.ack(s.records.at(-1)!), 5);
        },
      ),
      { maxBatchRecords: 500, window: 8 },
    );
    await waitUntil('everything acked', () => acked.at(-1) === 40);
    const batches = backend!.sessions[0]!.batches;
    assert.ok(batches.every((b) => b.length <= 7), `batch sizes ${batches.map((b) => b.length)}`);
    assert.equal(maxUnacked, 1);
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
        (s) => s.ack(s.records.at(-1)!),
      ),
      { window: 1000, maxBatchRecords: 4 },
    );
    await waitUntil('the sender to block on drain', () => up.stats().drainWaits > 0);
    assert.equal(reading, false);
    const blockedAt = up.stats().recordsSent;
    assert.ok(blockedAt < 200, `sent ${blockedAt} of 200 while the backend read nothing`);
    backend!.sessions[0]!.call.resume();
    await waitUntil('everything acked once the backend reads again', () => acked.at(-1) === 200);
  });
});
