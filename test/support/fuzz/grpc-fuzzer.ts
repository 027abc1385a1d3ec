/**
 * Garbage on the uplink: streams to Uplink.Connect whose frames are random bytes or mutations of valid
 * UplinkFrames (so some decode into odd values: huge or zero seqs, empty ids), with a valid token for another
 * gateway, a bad token or none; plus raw TCP connections that send noise or a broken HTTP/2 preface.
 */
import { connect as connectTcp } from 'node:net';
import { credentials, makeGenericClientConstructor, Metadata, type Client, type ClientDuplexStream } from '@grpc/grpc-js';
import { UplinkFrame } from '@fleetgate/protos';
import { Random } from './random.ts';

export interface GrpcFuzzOptions {
  port: number;
  /** Frames to send in all. */
  frames: number;
  concurrency: number;
  /** A valid token for a gateway id the fuzzer may use (it must not be one the test cares about). */
  token: string;
  gatewayId: string;
  random: Random;
}

export interface GrpcFuzzResult {
  frames: number;
  streams: number;
  rawConnections: number;
  /** How streams ended, by gRPC status code. */
  statuses: Record<number, number>;
}

const identity = (b: Buffer) => b;
const RawUplink = makeGenericClientConstructor(
  {
    connect: {
      path: '/fleetgate.v1.Uplink/Connect',
      requestStream: true,
      responseStream: true,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
    },
  },
  'RawUplink',
) as unknown as new (
  address: string,
  creds: ReturnType<typeof credentials.createInsecure>,
) => Client & {
  connect(metadata: Metadata): ClientDuplexStream<Buffer, Buffer>;
};

function validFrames(gatewayId: string, random: Random): Buffer[] {
  const enc = (frame: UplinkFrame) => Buffer.from(UplinkFrame.encode(frame).finish());
  const seq = 1 + random.int(1000);
  const record = (s: number) => ({
    seq: s,
    deviceId: `fuzz-dev-${random.int(5)}`,
    stream: '',
    deviceSeq: 0,
    deviceTimeMs: 0,
    gatewayTimeMs: Date.now(),
    payload: random.bytes(random.int(64)),
    contentType: '',
  });
  return [
    enc({
      frame: { $case: 'hello', value: { gatewayId, version: 'fuzz', lastAckedSeq: random.int(10), heartbeatIntervalMs: 0 } },
    }),
    enc({ frame: { $case: 'batch', value: { records: [record(seq), record(seq + 1)] } } }),
    enc({ frame: { $case: 'batch', value: { records: [record(seq + 10)] } } }),
    enc({
      frame: { $case: 'hello', value: { gatewayId: 'gw-test', version: 'impostor', lastAckedSeq: 0, heartbeatIntervalMs: 0 } },
    }),
  ];
}

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.';

/** A token with a few characters changed or cut short: still printable, as metadata must be. */
function tamper(token: string, random: Random): string {
  const chars = [...token];
  for (let n = 1 + random.int(4); n > 0; n--) chars[random.int(chars.length)] = random.pick([...BASE64URL]);
  return chars.slice(0, random.next() < 0.2 ? random.int(chars.length) : chars.length).join('');
}

export async function fuzzGrpc({
  port,
  frames,
  concurrency,
  token,
  gatewayId,
  random,
}: GrpcFuzzOptions): Promise<GrpcFuzzResult> {
  const result: GrpcFuzzResult = { frames: 0, streams: 0, rawConnections: 0, statuses: {} };
  const client = new RawUplink(`127.0.0.1:${port}`, credentials.createInsecure());
  const stream = async () => {
    const metadata = new Metadata();
    const auth = random.next();
    if (auth < 0.7) metadata.set('authorization', `Bearer ${token}`);
    else if (auth < 0.85) metadata.set('authorization', `Bearer ${tamper(token, random)}`);
    const call = client.connect(metadata);
    const valid = validFrames(gatewayId, random);
    const count = 5 + random.int(40);
    const ended = new Promise<number>((resolve) => call.on('status', (s) => resolve(s.code)));
    call.on('error', () => {});
    call.on('data', () => {});
    if (random.next() < 0.8) call.write(valid[0]!); // a Hello first, so later frames reach the batch handling
    for (let i = 0; i < count; i++) {
      const r = random.next();
      call.write(r < 0.5 ? random.mutate(random.pick(valid)) : r < 0.8 ? random.bytes(random.int(300)) : random.pick(valid));
    }
    call.end();
    result.frames += count;
    result.streams++;
    const timer = setTimeout(() => call.cancel(), 2000);
    const code = await ended;
    clearTimeout(timer);
    result.statuses[code] = (result.statuses[code] ?? 0) + 1;
  };
  const raw = () =>
    new Promise<void>((resolve) => {
      const socket = connectTcp(port, '127.0.0.1');
      socket.on('error', () => {});
      socket.on('close', () => resolve());
      socket.on('connect', () => {
        const preface =
          random.next() < 0.5 ? Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n').subarray(0, random.int(25)) : Buffer.alloc(0);
        socket.write(Buffer.concat([preface, random.bytes(1 + random.int(500))]));
        setTimeout(() => socket.destroy(), 200);
      });
      result.rawConnections++;
      result.frames++;
    });
  const workers = Array.from({ length: concurrency }, async () => {
    while (result.frames < frames) await (random.next() < 0.05 ? raw() : stream());
  });
  await Promise.all(workers);
  client.close();
  return result;
}
