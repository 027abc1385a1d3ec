import assert from 'node:assert/strict';
import { DEVICE_ID, isOwnFilter, parseDeviceTopic } from '../../gateway/src/ingress/topics.ts';

describe('topics', function () {
  it('topics - telemetry on the default and on named streams', () => {
    assert.deepEqual(parseDeviceTopic('devices/d1/telemetry'), { kind: 'telemetry', deviceId: 'd1', stream: '' });
    assert.deepEqual(parseDeviceTopic('devices/d1/telemetry/vibration'), {
      kind: 'telemetry',
      deviceId: 'd1',
      stream: 'vibration',
    });
    assert.deepEqual(parseDeviceTopic('devices/d1/telemetry/motor/1/rpm'), {
      kind: 'telemetry',
      deviceId: 'd1',
      stream: 'motor/1/rpm',
    });
  });

  it('topics - other topics of a device, empty stream levels, and topics outside devices/', () => {
    assert.deepEqual(parseDeviceTopic('devices/d1/status'), { kind: 'device', deviceId: 'd1' });
    assert.deepEqual(parseDeviceTopic('devices/d1'), { kind: 'device', deviceId: 'd1' });
    assert.deepEqual(parseDeviceTopic('devices/d1/telemetryx'), { kind: 'device', deviceId: 'd1' });
    assert.deepEqual(parseDeviceTopic('devices/d1/telemetry/'), { kind: 'invalid-stream', deviceId: 'd1' });
    assert.deepEqual(parseDeviceTopic('devices/d1/telemetry/a//b'), { kind: 'invalid-stream', deviceId: 'd1' });
    assert.deepEqual(parseDeviceTopic(`devices/d1/telemetry/${'s'.repeat(129)}`), { kind: 'invalid-stream', deviceId: 'd1' });
    assert.equal(parseDeviceTopic('sensors/d1/telemetry'), undefined);
    assert.equal(parseDeviceTopic('$SYS/broker/clients'), undefined);
  });

  it("topics - subscription filters must stay inside the device's own space", () => {
    assert.ok(isOwnFilter('devices/d1/#', 'd1'));
    assert.ok(isOwnFilter('devices/d1/commands/+', 'd1'));
    assert.ok(isOwnFilter('devices/d1', 'd1'));
    assert.ok(!isOwnFilter('devices/+/telemetry', 'd1'));
    assert.ok(!isOwnFilter('devices/#', 'd1'));
    assert.ok(!isOwnFilter('devices/d10/#', 'd1'));
    assert.ok(!isOwnFilter('#', 'd1'));
  });

  it('topics - device ids: 1 to 128 characters, none of them / + # or a control character', () => {
    for (const ok of ['d1', 'sensor-42.barn_3', 'a:b', 'x'.repeat(128), '-leading', 'ünïcode', 'clean retained'])
      assert.ok(DEVICE_ID.test(ok), ok);
    for (const bad of ['', 'a/b', 'a+b', '#', 'x'.repeat(129), 'tab\there', 'del\u007f', 'c1\u0085'])
      assert.ok(!DEVICE_ID.test(bad), JSON.stringify(bad));
  });
});
