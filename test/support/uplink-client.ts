/** A raw Uplink stream for protocol tests: write frames, read what comes back, see how it ended. */
import {
  credentials,
  Metadata,
  status,
  type ChannelCredentials,
  type ClientDuplexStream,
  type StatusObject,
} from '@grpc/grpc-js';
import { UplinkClient, type Ack, type DownlinkFrame, type Gap, type TelemetryRecord, type UplinkFrame } from '@fleetgate/protos';

export class RawUplink {
  readonly frames: DownlinkFrame[] = [];
  readonly ended: Promise<StatusObject>;
  private readonly call: ClientDuplexStream<UplinkFrame, DownlinkFrame>;
  private waiters: Array<() => void> = [];

  constructor(
    readonly client: UplinkClient,
    metadata = new Metadata(),
  ) {
    this.call = client.connect(metadata);
    this.call.on('data', (frame: DownlinkFrame) => {
      this.frames.push(frame);
      for (const wake of this.waiters.splice(0)) wake();
    });
    this.call.on('error', () => {});
    this.ended = new Promise((resolve) => this.call.on('status', resolve));
  }

  /** A stream to 127.0.0.1:port; `token` goes as `authorization: Bearer` metadata. */
  static connect(
    port: number,
    options: { token?: string; authorization?: string; credentials?: ChannelCredentials } = {},
  ): RawUplink {
    const metadata = new Metadata();
    const authorization = options.authorization ?? (options.token ? `Bearer ${options.token}` : undefined);
    if (authorization) metadata.set('authorization', authorization);
    return new RawUplink(new UplinkClient(`127.0.0.1:${port}`, options.credentials ?? credentials.createInsecure()), metadata);
  }

  hello(gatewayId: string, lastAckedSeq = 0): void {
    this.call.write({ frame: { $case: 'hello', value: { gatewayId, version: 'test', lastAckedSeq, heartbeatIntervalMs: 0 } } });
  }

  batch(records: TelemetryRecord[]): void {
    this.call.write({ frame: { $case: 'batch', value: { records } } });
  }

  gap(gap: Gap): void {
    this.call.write({ frame: { $case: 'gap', value: gap } });
  }

  heartbeat(id: number, timeMs = Date.now()): void {
    this.call.write({ frame: { $case: 'heartbeat', value: { id, timeMs } } });
  }

  /** Resolves with the n-th frame received (1-based), waiting for it if need be. */
  async frame(n: number): Promise<DownlinkFrame> {
    while (this.frames.length < n) await new Promise<void>((resolve) => this.waiters.push(resolve));
    return this.frames[n - 1]!;
  }

  /** Resolves with the n-th Ack received (1-based). */
  async ack(n: number): Promise<Ack> {
    for (;;) {
      const acks = this.frames.flatMap((f) => (f.frame?.$case === 'ack' ? [f.frame.value] : []));
      if (acks.length >= n) return acks[n - 1]!;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Credit granted so far: Welcome's and every Credit frame's. */
  get credit(): number {
    let credit = 0;
    for (const { frame } of this.frames) {
      if (frame?.$case === 'welcome') credit += frame.value.limits?.maxBatchesInFlight ?? 0;
      if (frame?.$case === 'credit') credit += frame.value.batches;
    }
    return credit;
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }
}

export function telemetry(seq: number, deviceId = 'dev-1'): TelemetryRecord {
  return {
    seq,
    deviceId,
    stream: '',
    deviceSeq: 0,
    deviceTimeMs: 0,
    gatewayTimeMs: Date.now(),
    payload: Buffer.from(`p${seq}`),
    contentType: '',
  };
}

export const range = (from: number, to: number): TelemetryRecord[] =>
  Array.from({ length: to - from + 1 }, (_, i) => telemetry(from + i));

export { status };
