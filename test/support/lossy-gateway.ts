/**
 * A deliberately broken stand-in for the gateway, to prove that the simulator's verifier finds what is wrong:
 * a bare aedes broker that PUBACKs every telemetry message at once and forwards them to a real cloud-stub over
 * the uplink protocol, except that it drops, duplicates or holds back the messages it is told to (keys
 * "deviceId#n", n read from the simulator's payload).
 */
import { createServer, type Server } from 'node:net';
import { Aedes } from 'aedes';
import { readPayloadHeader } from '@fleetgate/simulators';
import type { TelemetryRecord } from '@fleetgate/protos';
import { RawUplink } from './uplink-client.ts';

export interface Mischief {
  drop?: ReadonlySet<string>;
  duplicate?: ReadonlySet<string>;
  /** Each key is forwarded only right after the message its value names. */
  holdUntilAfter?: ReadonlyMap<string, string>;
}

export class LossyGateway {
  private seq = 0;
  private queue: TelemetryRecord[] = [];
  private readonly held = new Map<string, TelemetryRecord>();
  private acks = 0;
  private flushing = false;

  private constructor(
    private readonly server: Server,
    private readonly broker: Aedes,
    private readonly uplink: RawUplink,
    private readonly mischief: Mischief,
  ) {}

  static async start(cloudPort: number, mischief: Mischief): Promise<LossyGateway> {
    const broker = await Aedes.createBroker();
    const server = createServer(broker.handle);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const uplink = RawUplink.connect(cloudPort);
    uplink.hello('gw-lossy');
    await uplink.frame(1); // Welcome
    const gateway = new LossyGateway(server, broker, uplink, mischief);
    broker.on('publish', (packet, client) => {
      const match = /^devices\/([^/]+)\/telemetry$/.exec(packet.topic);
      if (client && match) gateway.onTelemetry(match[1]!, Buffer.from(packet.payload));
    });
    return gateway;
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  async close(): Promise<void> {
    this.uplink.close();
    await new Promise<void>((resolve) => this.broker.close(() => resolve()));
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private onTelemetry(deviceId: string, payload: Buffer): void {
    const key = `${deviceId}#${readPayloadHeader(payload.toString('latin1'))?.n}`;
    if (this.mischief.drop?.has(key)) return;
    const record = (): TelemetryRecord => ({
      seq: ++this.seq,
      deviceId,
      stream: '',
      deviceSeq: 0,
      deviceTimeMs: 0,
      gatewayTimeMs: Date.now(),
      payload,
      contentType: '',
    });
    if (this.mischief.holdUntilAfter?.has(key)) {
      this.held.set(key, { ...record(), seq: 0 });
      return;
    }
    this.queue.push(record());
    if (this.mischief.duplicate?.has(key)) this.queue.push(record());
    for (const [heldKey, after] of this.mischief.holdUntilAfter ?? []) {
      const heldRecord = this.held.get(heldKey);
      if (after === key && heldRecord) this.queue.push({ ...heldRecord, seq: ++this.seq });
    }
    void this.flush();
  }

  /** One batch in flight at a time: well within the cloud-stub's credit. */
  private async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, 200);
      this.uplink.batch(batch);
      await this.uplink.ack(++this.acks);
    }
    this.flushing = false;
  }
}
