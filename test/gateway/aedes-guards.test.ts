/**
 * The guards for what aedes 2.0.0-beta.1 lacks of aedes 1.x's security fixes (gateway/src/ingress/aedes-guards.ts),
 * against the real broker on a real socket: prototype-key client ids, the inbound QoS 2 cap, a clean session's QoS
 * 2 state.
 */
import assert from 'node:assert/strict';
import { connect as connectSocket, type Socket } from 'node:net';
import mqtt from 'mqtt';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { IncomingQos2 } from '../../gateway/src/ingress/aedes-guards.ts';
import { startInProcess, type InProcessStack } from '../support/in-process.ts';
import { useTempDir } from '../support/temp-dir.ts';

/** A raw MQTT connection: what mqtt.js would hide (it always answers PUBREC with PUBREL). */
class RawClient {
  readonly packets: Packet[] = [];
  closed = false;
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: Socket) {
    const parser = mqttPacket.parser({ protocolVersion: 5 });
    parser.on('packet', (packet) => {
      this.packets.push(packet);
      this.wake();
    });
    socket.on('data', (chunk) => parser.parse(chunk));
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  static async open(port: number, clientId: string, clean: boolean, protocolVersion: 4 | 5 = 4): Promise<RawClient> {
    const socket = connectSocket(port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    const client = new RawClient(socket);
    client.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion, clientId, clean, keepalive: 60 }, protocolVersion);
    await client.next('connack');
    return client;
  }

  send(packet: Record<string, unknown>, protocolVersion: 4 | 5 = 4): void {
    this.socket.write(mqttPacket.generate(packet as unknown as Packet, { protocolVersion }));
  }

  qos2(messageId: number, topic: string, payload: string): void {
    this.send({ cmd: 'publish', topic, payload, qos: 2, messageId, retain: false, dup: false });
  }

  /** The next packet of this kind not yet taken, or undefined if the connection closed first. */
  async next(cmd: string): Promise<Packet | undefined> {
    for (;;) {
      const index = this.packets.findIndex((p) => p.cmd === cmd);
      if (index !== -1) return this.packets.splice(index, 1)[0];
      if (this.closed) return undefined;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  async untilClosed(): Promise<void> {
    while (!this.closed) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  close(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

describe('aedes guards', function () {
  this.timeout(20_000);
  const dir = useTempDir();
  let stack: InProcessStack;
  const raws: RawClient[] = [];

  beforeEach(async () => {
    stack = await startInProcess(dir.path, { maxUnackedPerConnection: 3 });
  });
  afterEach(async () => {
    for (const raw of raws.splice(0)) raw.close();
    await stack.close();
  });

  const open = async (clientId: string, clean: boolean) => {
    const raw = await RawClient.open(stack.gateway.mqttAddress.port, clientId, clean);
    raws.push(raw);
    return raw;
  };
  const refusals = async () => (await stack.gateway.stats()).ingress.refusals;

  it('aedes guards - client ids named after Object.prototype members get CONNACK 0x02, and the gateway serves on', async () => {
    const names = ['constructor', 'toString', 'valueOf', 'hasOwnProperty', '__proto__', 'isPrototypeOf'];
    for (const clientId of names) {
      await assert.rejects(
        mqtt.connectAsync({ host: '127.0.0.1', port: stack.gateway.mqttAddress.port, clientId, reconnectPeriod: 0 }),
        (err: Error & { code?: number }) => err.code === 2,
        clientId,
      );
    }
    assert.equal((await refusals())['identifier-rejected'], names.length);
    const device = await mqtt.connectAsync({
      host: '127.0.0.1',
      port: stack.gateway.mqttAddress.port,
      clientId: 'dev-a',
      reconnectPeriod: 0,
    });
    await device.publishAsync('devices/dev-a/telemetry', 'still here', { qos: 1 });
    await device.endAsync();
  });

  it('aedes guards - QoS 2 PUBLISHes awaiting PUBREL are capped at the receive maximum; one more ends the connection', async () => {
    const raw = await open('dev-a', true);
    for (let id = 1; id <= 3; id++) raw.qos2(id, 'devices/dev-a/echo', `m${id}`);
    for (let id = 1; id <= 3; id++) assert.equal((await raw.next('pubrec'))?.messageId, id);
    // A retransmission of one awaiting PUBREL takes no second slot [MQTT-4.3.3-2].
    raw.send({ cmd: 'publish', topic: 'devices/dev-a/echo', payload: 'm1', qos: 2, messageId: 1, retain: false, dup: true });
    assert.equal((await raw.next('pubrec'))?.messageId, 1);
    raw.qos2(4, 'devices/dev-a/echo', 'm4');
    await raw.untilClosed();
    assert.equal((await refusals())['qos2-inflight-exceeded'], 1);
  });

  it('aedes guards - a PUBREL frees its slot: a device that completes its QoS 2 flows is never capped', async () => {
    const raw = await open('dev-a', true);
    for (let id = 1; id <= 10; id++) {
      raw.qos2(id, 'devices/dev-a/telemetry', `m${id}`);
      assert.equal((await raw.next('pubrec'))?.messageId, id);
      raw.send({ cmd: 'pubrel', messageId: id });
      assert.equal((await raw.next('pubcomp'))?.messageId, id);
    }
    assert.equal(raw.closed, false);
    assert.equal((await stack.gateway.stats()).ingress.messages, 10);
  });

  it("aedes guards - a clean session's QoS 2 state goes with it; a persistent session's stays [MQTT-3.1.2-6]", async () => {
    // Three awaiting PUBREL, then gone: were they kept, the next clean session's first new id would exceed the cap.
    const first = await open('dev-a', true);
    for (let id = 1; id <= 3; id++) first.qos2(id, 'devices/dev-a/echo', `m${id}`);
    for (let id = 1; id <= 3; id++) assert.ok(await first.next('pubrec'));
    first.close();
    await first.untilClosed();
    const second = await open('dev-a', true);
    for (let id = 4; id <= 6; id++) second.qos2(id, 'devices/dev-a/echo', `m${id}`);
    for (let id = 4; id <= 6; id++) assert.equal((await second.next('pubrec'))?.messageId, id);
    second.close();
    await second.untilClosed();
    // A persistent session keeps them: its PUBREL after reconnecting completes the flow (PUBCOMP).
    const persistent = await open('dev-b', false);
    persistent.qos2(7, 'devices/dev-b/echo', 'm7');
    assert.ok(await persistent.next('pubrec'));
    persistent.close();
    await persistent.untilClosed();
    const resumed = await open('dev-b', false);
    resumed.send({ cmd: 'pubrel', messageId: 7 });
    assert.equal((await resumed.next('pubcomp'))?.messageId, 7);
    assert.equal((await refusals())['qos2-inflight-exceeded'], 0);
  });

  it('aedes guards - the QoS 2 store: a slot refused after all is given back, a stored one is not', () => {
    const store = new IncomingQos2(2);
    assert.equal(store.admit('d', 1), true);
    assert.equal(store.admit('d', 2), true);
    assert.equal(store.admit('d', 3), false);
    store.release('d', 2);
    assert.equal(store.count('d'), 1);
    assert.equal(store.admit('d', 3), true);
    assert.equal(store.count('other'), 0);
    store.clean('d');
    assert.equal(store.count('d'), 0);
  });
});
