/** The simulator's parts on their own: payloads, scenario files, the verifier's arithmetic, token expiry. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeToken, generateKeys, loadSigningKey } from '@fleetgate/common';
import type { ExportedGap, ExportedRecord } from '@fleetgate/cloud-stub';
import {
  DeviceLedger,
  loadScenario,
  MIN_PAYLOAD_BYTES,
  parseScenario,
  payloadMaker,
  readPayloadHeader,
  Verifier,
} from '@fleetgate/simulators';
import { FleetTokens } from '../../simulators/src/credentials.ts';
import { useTempDir } from '../support/temp-dir.ts';

describe('simulator parts', function () {
  this.timeout(10_000);

  describe('payloads', () => {
    it('pads to exactly the size asked and starts with the message number and time', () => {
      const make = payloadMaker({ bytes: 200 });
      const payload = make('dev-1', 42, 1_700_000_000_123.456);
      assert.equal(Buffer.byteLength(payload), 200);
      assert.deepEqual(readPayloadHeader(payload), { n: 42, timeMs: 1_700_000_000_123.456 });
      assert.equal(JSON.parse(payload)._n, 42);
    });

    it('fills a template: every generator, nested, with the header first', () => {
      const make = payloadMaker({
        template: {
          id: '$device',
          n: '$seq',
          at: '$now',
          iso: '$iso',
          u: '$uuid',
          b: '$bool',
          i: '$int:5:7',
          f: '$float:1:2:1',
          w: '$walk:10:20',
          p: '$pick:a|b',
          nested: { list: ['$int:1:1', 'plain', 3] },
        },
      });
      const first = JSON.parse(make('dev-9', 7, 1_700_000_000_000)) as Record<string, unknown>;
      assert.deepEqual(readPayloadHeader(make('dev-9', 7, 1_700_000_000_000)), { n: 7, timeMs: 1_700_000_000_000 });
      assert.equal(first.id, 'dev-9');
      assert.equal(first.n, 7);
      assert.equal(first.at, 1_700_000_000_000);
      assert.equal(first.iso, '2023-11-14T22:13:20.000Z');
      assert.match(first.u as string, /^[0-9a-f-]{36}$/);
      assert.equal(typeof first.b, 'boolean');
      assert.ok([5, 6, 7].includes(first.i as number));
      assert.ok((first.f as number) >= 1 && (first.f as number) <= 2);
      assert.ok((first.w as number) >= 10 && (first.w as number) <= 20);
      assert.ok(['a', 'b'].includes(first.p as string));
      assert.deepEqual(first.nested, { list: [1, 'plain', 3] });
    });

    it('refuses what it cannot make, naming the field', () => {
      assert.throws(
        () => payloadMaker({ bytes: MIN_PAYLOAD_BYTES - 1 }, '--payload'),
        /^ConfigError: --payload: \d+ bytes: expected a whole number of bytes from/,
      );
      assert.throws(
        () => payloadMaker({ template: { a: { b: '$nope' } } }, '--payload-template'),
        /--payload-template\.a\.b: unknown generator "\$nope"/,
      );
      assert.throws(
        () => payloadMaker({ template: { x: '$int:9:1' } }),
        /payload\.x: "\$int:9:1" has its minimum above its maximum/,
      );
      assert.throws(() => payloadMaker({ template: { x: '$float:a:b' } }), /payload\.x: "\$float:a:b" needs 2 to 3 numbers/);
      assert.throws(() => payloadMaker({ template: [1, 2] }), /payload: expected a JSON object/);
      assert.throws(() => payloadMaker({ template: { _n: 1 } }), /payload\._n: _n and _t are the simulator's own fields/);
    });
  });

  describe('scenarios', () => {
    const dir = useTempDir('fleetgate-scenario-');

    it('loads phases, ramps and faults', () => {
      const file = join(dir.path, 's.yaml');
      writeFileSync(
        file,
        'name: s\ndevices: 5\nprotocol: sdk\nstack: {}\nphases:\n  - { name: up, duration: 2s, devices: { from: 0, to: 5 }, rate: 3 }\n  - name: hold\n    duration: 1m\n    faults: [{ at: 10s, kind: kill-gateway, down: 500ms }, { at: 20, kind: reconnect-storm }]\n',
      );
      const s = loadScenario(file);
      assert.equal(s.devices, 5);
      assert.equal(s.protocol, 'sdk');
      assert.deepEqual(s.stack, { gatewayArgs: [], cloudArgs: [] });
      assert.deepEqual(s.phases[0], {
        name: 'up',
        durationMs: 2000,
        devices: { from: 0, to: 5 },
        rate: { from: 3, to: 3 },
        faults: [],
      });
      assert.deepEqual(s.phases[1]!.faults, [
        { kind: 'kill-gateway', atMs: 10_000, downMs: 500 },
        { kind: 'reconnect-storm', atMs: 20_000, downMs: 1000 },
      ]);
    });

    it('refuses each kind of bad value with the field, the value and what was expected', () => {
      const phase = { name: 'p', duration: '10s' };
      const cases: Array<[unknown, RegExp]> = [
        [{ phases: [] }, /^ConfigError: phases: expected a list of at least one phase/],
        [{ phases: [phase], devicez: 3 }, /scenario\.devicez: unknown field; expected one of name, description, devices/],
        [{ phases: [phase], devices: 0 }, /devices: 0: expected a whole number >= 1/],
        [{ phases: [phase], protocol: 'coap' }, /protocol: "coap": expected one of mqtt, sdk, mix/],
        [{ phases: [phase], qos: 2 }, /qos: 2: expected one of 0, 1/],
        [{ phases: [{ name: 'p', duration: 'soon' }] }, /phases\[0\]\.duration: "soon": expected a duration such as 30s/],
        [{ phases: [{ ...phase, rate: { from: 1, to: -1 } }] }, /phases\[0\]\.rate\.to: -1: expected a number >= 0/],
        [
          { phases: [{ ...phase, faults: [{ at: '1s', kind: 'unplug' }] }] },
          /phases\[0\]\.faults\[0\]\.kind: "unplug": expected one of kill-gateway, restart-cloud, expire-tokens, reconnect-storm/,
        ],
        [
          { phases: [{ ...phase, faults: [{ at: '11s', kind: 'reconnect-storm' }] }] },
          /phases\[0\]\.faults\[0\]\.at: 11s is not within the phase \(it lasts 10s\)/,
        ],
        [
          { phases: [{ ...phase, faults: [{ at: '1s', kind: 'kill-gateway' }] }] },
          /phases\[0\]\.faults\[0\]\.kind: kill-gateway needs the simulator to run the stack/,
        ],
        [{ phases: [phase], payload: 3 }, /payload: 3: expected a number of bytes, at least/],
      ];
      for (const [doc, message] of cases) assert.throws(() => parseScenario(doc), message, JSON.stringify(doc));
    });

    it('refuses a file that is not YAML, naming the file', () => {
      const file = join(dir.path, 'bad.yaml');
      writeFileSync(file, 'phases: [\n');
      assert.throws(() => loadScenario(file), /--scenario: .*bad\.yaml is not valid YAML/);
    });
  });

  describe('verifier', () => {
    const record = (deviceId: string, seq: number, n: number, receivedTime = 1000 + seq): ExportedRecord => ({
      gatewayId: 'gw',
      seq,
      deviceId,
      stream: '',
      contentType: '',
      deviceSeq: 0,
      deviceTime: 0,
      gatewayTime: 0,
      receivedTime,
      payload: Buffer.from(payloadMaker({ bytes: 64 })(deviceId, n, 1000)).toString('base64'),
    });
    const ledger = (id: string, protocol: 'mqtt' | 'sdk', sent: number, acked: number[]) => {
      const l = new DeviceLedger(id, protocol);
      for (let n = 1; n <= sent; n++) l.markSent(n, true);
      for (const n of acked) l.markAcked(n);
      return l;
    };

    it('tells lost from unacked, a QoS 1 redelivery from a duplicate, and finds reordering; SDK copies are always duplicates', () => {
      const mqtt = ledger('m', 'mqtt', 6, [1, 2, 3, 4, 5]);
      mqtt.inFlight.add(4);
      mqtt.onConnectionDrop(); // 4 and 6 were in flight at a drop
      const sdk = ledger('s', 'sdk', 3, [1, 2, 3]);
      const verifier = new Verifier([mqtt, sdk], 0);
      // m: 1, 2, 4, 4 (redelivered), 2 (duplicate), 5 (3 lost; 6 unacked and missing); s: 1, 3, 2 (reordered), 3 again.
      const arrivals: Array<[string, number]> = [
        ['m', 1],
        ['m', 2],
        ['m', 4],
        ['m', 4],
        ['m', 2],
        ['m', 5],
        ['s', 1],
        ['s', 3],
        ['s', 2],
        ['s', 3],
      ];
      arrivals.forEach(([id, n], i) => verifier.add(record(id, i + 1, n)));
      const gaps: ExportedGap[] = [
        { gatewayId: 'gw', fromSeq: 50, toSeq: 59, reason: 'too-old', count: 10, time: 0, receivedTime: 0 },
      ];
      const { verification: v } = verifier.finish(gaps);
      assert.deepEqual(v.perDevice, [
        { deviceId: 'm', protocol: 'mqtt', sent: 6, acked: 5, arrived: 4, lost: 1, duplicates: 1, redelivered: 1, outOfOrder: 0 },
        { deviceId: 's', protocol: 'sdk', sent: 3, acked: 3, arrived: 3, lost: 0, duplicates: 1, redelivered: 0, outOfOrder: 1 },
      ]);
      assert.deepEqual(v.examples, { lost: ['m#3'], duplicates: ['m#2', 's#3'], outOfOrder: ['s#2'] });
      assert.equal(v.unackedMissing, 1);
      assert.deepEqual(v.gaps, { ranges: 1, records: 10, byReason: { 'too-old': 10 } });
      assert.equal(v.ok, false);
    });

    it('orders by the gateway seq, not by commit order, and measures latency from the payload time', () => {
      const l = ledger('d', 'mqtt', 3, [1, 2, 3]);
      const verifier = new Verifier([l], 0);
      verifier.add(record('d', 3, 3, 1030));
      verifier.add(record('d', 1, 1, 1010));
      verifier.add(record('d', 2, 2, 2500));
      const { verification: v, latency, latencyOverTime } = verifier.finish([]);
      assert.equal(v.ok, true);
      assert.equal(latency.count, 3);
      assert.equal(latency.max, 1500);
      assert.deepEqual(
        latencyOverTime.map((b) => [b.t, b.count]),
        [
          [1, 2],
          [2, 1],
        ],
      );
    });
  });

  describe('fleet tokens', () => {
    const dir = useTempDir('fleetgate-keys-');

    it('expire at an expire-tokens fault, and are replaced by fresh ones after it', async () => {
      await generateKeys('EdDSA', dir.path);
      const key = await loadSigningKey({ keyFile: join(dir.path, 'fleet.key'), field: '--key' });
      let now = 1_700_000_000_000;
      const tokens = new FleetTokens(key, 3600, () => now);
      tokens.expireAllAt(now + 10_000);
      const before = await tokens.token('dev-1');
      assert.equal(decodeToken(before).claims.exp, (now + 10_000) / 1000);
      assert.equal(await tokens.token('dev-1'), before);
      now += 9_500; // within a second of expiring: replaced, by a token that lives its full ttl
      const after = await tokens.token('dev-1');
      assert.notEqual(after, before);
      assert.equal(decodeToken(after).claims.exp, Math.floor(now / 1000) + 3600);
      assert.equal(decodeToken(after).claims.sub, 'dev-1');
    });
  });
});
