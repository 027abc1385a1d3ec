import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Acl } from '../../gateway/src/ingress/acl.ts';
import { covers, intersects, isValidFilter, levels, matches } from '../../gateway/src/ingress/topic-filter.ts';
import { useTempDir } from '../support/temp-dir.ts';

const L = levels;

describe('topic filters', function () {
  it('topic filters - matches follows MQTT wildcards, and $ topics escape leading wildcards [MQTT-4.7.2-1]', () => {
    assert.ok(matches(L('a/+/c'), L('a/b/c')));
    assert.ok(matches(L('a/#'), L('a')));
    assert.ok(matches(L('a/#'), L('a/b/c')));
    assert.ok(!matches(L('a/+'), L('a/b/c')));
    assert.ok(!matches(L('a/b'), L('a')));
    assert.ok(!matches(L('#'), L('$SYS/x')));
    assert.ok(matches(L('$SYS/#'), L('$SYS/x')));
  });

  it('topic filters - covers: every topic of the filter is matched by the pattern', () => {
    assert.ok(covers(L('devices/d1/#'), L('devices/d1/commands/+')));
    assert.ok(covers(L('devices/+/status'), L('devices/d2/status')));
    assert.ok(covers(L('devices/+/status'), L('devices/+/status')));
    assert.ok(!covers(L('devices/d1/#'), L('devices/+/telemetry')));
    assert.ok(!covers(L('devices/+/status'), L('devices/#')));
    assert.ok(!covers(L('a/b'), L('a/+')));
  });

  it('topic filters - intersects: some topic matches both', () => {
    assert.ok(intersects(L('devices/+/secrets/#'), L('devices/d2/#')));
    assert.ok(intersects(L('a/+'), L('+/b')));
    assert.ok(intersects(L('a/#'), L('a')));
    assert.ok(!intersects(L('a/b'), L('a/c')));
    assert.ok(!intersects(L('a/+'), L('a/b/c')));
  });

  it('topic filters - valid subscription filters [MQTT-4.7.1]', () => {
    for (const ok of ['a/b', '#', 'a/#', '+/b/+', '/']) assert.ok(isValidFilter(ok), ok);
    for (const bad of ['', 'a/#/b', 'a#', 'a/b+', '##']) assert.ok(!isValidFilter(bad), bad);
  });
});

describe('acl', function () {
  const dir = useTempDir();

  it('acl - by default a device publishes and subscribes under its own id only', () => {
    const acl = new Acl();
    assert.ok(acl.canPublish('d1', 'devices/d1/telemetry'));
    assert.ok(!acl.canPublish('d1', 'devices/d2/telemetry'));
    assert.ok(!acl.canPublish('d1', 'site/alarm'));
    assert.ok(acl.canSubscribe('d1', 'devices/d1/commands/#'));
    // Broad filters overlapping its own space are granted; delivery lets through only its own topics.
    assert.ok(acl.canSubscribe('d1', 'devices/+/telemetry'));
    assert.ok(acl.canSubscribe('d1', '#'));
    assert.ok(!acl.canReceive('d1', 'devices/d2/telemetry'));
    // Nothing it could match may ever be delivered: refused.
    assert.ok(!acl.canSubscribe('d1', 'devices/d2/#'));
    assert.ok(!acl.canSubscribe('d1', 'site/+'));
    assert.ok(!acl.canSubscribe('d1', '$SYS/#'));
    assert.ok(acl.canReceive('d1', 'devices/d1/commands/reboot'));
    assert.ok(!acl.canReceive('d1', 'devices/d2/commands/reboot'));
  });

  it('acl - rules from a file: first match wins, a subscription is refused only when all it matches is denied, delivery is filtered', () => {
    const file = join(dir.path, 'acl.yaml');
    writeFileSync(
      file,
      `
rules:
  - deny: subscribe
    topic: devices/+/secrets/#
  - allow: [publish, subscribe]
    topic: devices/{deviceId}/#
  - allow: subscribe
    topic: devices/+/status
  - allow: publish
    topic: site/broadcast/#
  - allow: subscribe
    topic: site/broadcast/#
`,
    );
    const acl = Acl.fromFile(file);
    assert.ok(acl.canSubscribe('d1', 'devices/d2/status'), 'local pub/sub between devices where a rule allows it');
    assert.ok(acl.canSubscribe('d1', 'devices/+/status'));
    assert.ok(acl.canSubscribe('d1', 'devices/d1/#'), 'overlaps its secrets: granted, the secrets filtered at delivery');
    assert.ok(acl.canSubscribe('d1', '#'));
    assert.ok(!acl.canSubscribe('d1', 'devices/d1/secrets/#'), 'everything it could match is denied');
    assert.ok(!acl.canSubscribe('d1', 'devices/+/secrets/key'));
    assert.ok(acl.canSubscribe('d1', 'devices/d1/commands/#'));
    assert.ok(!acl.canReceive('d1', 'devices/d1/secrets/key'), 'a deny still holds at delivery');
    assert.ok(acl.canReceive('d1', 'devices/d1/commands/x'));
    assert.ok(acl.canPublish('d1', 'site/broadcast/hello'));
    assert.ok(!acl.canPublish('d1', 'site/other'));
  });

  it('acl - a rule file with a mistake is refused naming the rule and the field', () => {
    const cases: Array<[string, RegExp]> = [
      ['rules: nope', /must have a list "rules"/],
      ['rules:\n  - topic: a/#', /rule 1: needs exactly one of "allow" or "deny"/],
      ['rules:\n  - allow: publish\n    deny: publish\n    topic: a', /rule 1: needs exactly one/],
      ['rules:\n  - allow: read\n    topic: a', /rule 1: "allow: read" is not publish or subscribe/],
      ['rules:\n  - allow: publish\n    topic: a/#/b', /rule 1: "topic" must be an MQTT topic filter/],
      [
        'rules:\n  - allow: publish\n    topic: devices/{device}/x',
        /rule 1: "topic" devices\/\{device\}\/x: the only placeholder is \{deviceId\}/,
      ],
      ['rules:\n  - allow: publish\n    topic: a\n    qos: 1', /rule 1: unknown field "qos"/],
      ['rules: [\n', /cannot read/],
    ];
    for (const [text, message] of cases) {
      const file = join(dir.path, 'bad.yaml');
      writeFileSync(file, text);
      assert.throws(() => Acl.fromFile(file), message, text);
    }
    assert.throws(() => Acl.fromFile(join(dir.path, 'missing.yaml')), /--acl: cannot read/);
  });
});
