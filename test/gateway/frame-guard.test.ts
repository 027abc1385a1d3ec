import assert from 'node:assert/strict';
import mqttPacket from 'mqtt-packet';
import { MqttFrameGuard } from '../../gateway/src/ingress/frame-guard.ts';

const publish = (bytes: number) =>
  mqttPacket.generate({
    cmd: 'publish',
    topic: 'devices/d/telemetry',
    payload: Buffer.alloc(bytes),
    qos: 0,
    retain: false,
    dup: false,
  });

describe('frame guard', function () {
  it('frame guard - lets packets up to the limit through, whatever way they are cut into chunks', () => {
    const stream = Buffer.concat([publish(10), publish(1000), mqttPacket.generate({ cmd: 'pingreq' }), publish(200)]);
    for (const cut of [1, 2, 3, 7, 64, stream.length]) {
      const guard = new MqttFrameGuard(1100);
      for (let i = 0; i < stream.length; i += cut)
        assert.equal(guard.scan(stream.subarray(i, i + cut)), undefined, `chunks of ${cut}`);
    }
  });

  it('frame guard - stops at the header of a packet over the limit, before its body arrives', () => {
    const guard = new MqttFrameGuard(1000);
    assert.equal(guard.scan(publish(100)), undefined);
    const header = publish(5000).subarray(0, 3); // type byte and a 2-byte remaining length
    assert.match(guard.scan(header) ?? '', /a packet of \d+ bytes, over the limit of 1000/);
  });

  it('frame guard - a remaining length of more than four bytes is malformed [MQTT-2.2.3]', () => {
    assert.match(
      new MqttFrameGuard(1 << 30).scan(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])) ?? '',
      /malformed remaining length/,
    );
  });
});
