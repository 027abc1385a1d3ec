/** The refusal table (gateway/src/refusals.ts): complete, as the README says, and true to MQTT 5. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { status } from '@grpc/grpc-js';
import {
  connackCode,
  DEVICE_LINK_REFUSALS,
  DISCONNECT_REASONS,
  DISCONNECTS,
  grpcStatus,
  MQTT_REFUSALS,
  REFUSALS,
  type ConnectRefusal,
  type Refusal,
  type RefusalRow,
} from '../../gateway/src/refusals.ts';

const rows = REFUSALS as Record<Refusal, RefusalRow>;

/** The reason codes MQTT 5 allows in each packet, from the tables of its sections. */
const MQTT5_ALLOWED: Record<string, { section: string; codes: number[] }> = {
  // 3.2.2.2 Connect Reason Code
  CONNACK: {
    section: '3.2.2.2',
    codes: [
      0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8c, 0x90, 0x95, 0x97, 0x99, 0x9a, 0x9b, 0x9c,
      0x9d, 0x9f,
    ],
  },
  // 3.4.2.1 PUBACK Reason Code
  PUBACK: { section: '3.4.2.1', codes: [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99] },
  // 3.9.3 SUBACK Payload
  SUBACK: { section: '3.9.3', codes: [0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8f, 0x91, 0x97, 0x9e, 0xa1, 0xa2] },
  // 3.14.2.1 Disconnect Reason Code
  DISCONNECT: {
    section: '3.14.2.1',
    codes: [
      0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8b, 0x8d, 0x8e, 0x8f, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
      0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f, 0xa0, 0xa1, 0xa2,
    ],
  },
};

describe('refusals', function () {
  it('refusals - each reason MQTT counts has its MQTT 3.1.1 answer, each the device link counts its gRPC status, and every row is counted', () => {
    for (const reason of MQTT_REFUSALS) assert.ok(rows[reason].mqtt !== undefined && rows[reason].log.mqtt, reason);
    for (const reason of DEVICE_LINK_REFUSALS) assert.ok(rows[reason].grpc !== undefined && rows[reason].log.grpc, reason);
    const counted = new Set<string>([...MQTT_REFUSALS, ...DEVICE_LINK_REFUSALS]);
    assert.deepEqual(
      Object.keys(REFUSALS).filter((reason) => !counted.has(reason)),
      [],
    );
    for (const [reason, row] of Object.entries(rows)) {
      assert.equal(row.mqtt !== undefined, (MQTT_REFUSALS as readonly string[]).includes(reason), `${reason}: mqtt column`);
      assert.equal(
        row.grpc !== undefined,
        (DEVICE_LINK_REFUSALS as readonly string[]).includes(reason),
        `${reason}: grpc column`,
      );
    }
  });

  it("refusals - a refused CONNECT gets the CONNACK return code of the README's table", () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const documented = new Map<string, number>();
    for (const line of readme.split('\n')) {
      const row = /^\| 0x(0[1-5]) [^|]+\|(.+)\|$/.exec(line);
      if (!row) continue;
      for (const [, name] of row[2]!.matchAll(/`([a-z-]+)`/g)) {
        if (name! in REFUSALS) documented.set(name!, Number.parseInt(row[1]!, 16));
      }
    }
    const connectRefusals = MQTT_REFUSALS.filter(
      (reason) => typeof rows[reason].mqtt === 'object' && 'connack' in rows[reason].mqtt,
    );
    assert.deepEqual([...documented.keys()].sort(), [...connectRefusals].sort());
    for (const [reason, code] of documented) assert.equal(connackCode(reason as ConnectRefusal), code, reason);
  });

  it('refusals - each MQTT 5 reason code is one MQTT 5 allows in its packet', () => {
    const answers = [
      ...Object.entries(rows).map(([reason, row]) => [reason, row.mqtt5] as const),
      ...Object.entries(DISCONNECTS).map(([reason, row]) => [`disconnect ${reason}`, row.mqtt5] as const),
    ];
    for (const [reason, answer] of answers) {
      if (!answer) continue;
      const allowed = MQTT5_ALLOWED[answer.packet]!;
      assert.equal(answer.section, allowed.section, `${reason}: the section of ${answer.packet}`);
      assert.ok(allowed.codes.includes(answer.code), `${reason}: 0x${answer.code.toString(16)} is not a ${answer.packet} code`);
    }
    // Every MQTT refusal has one, but the TLS handshake's (no MQTT was spoken).
    assert.deepEqual(
      MQTT_REFUSALS.filter((reason) => !rows[reason].mqtt5),
      ['tls-handshake'],
    );
  });

  it('refusals - the MQTT 5 codes for tokens, ids, quotas, topics, payloads and sizes', () => {
    const code = (reason: Refusal) => `${rows[reason].mqtt5?.packet} 0x${rows[reason].mqtt5?.code.toString(16)}`;
    assert.equal(code('token-expired'), 'CONNACK 0x86');
    assert.equal(code('token-bad-signature'), 'CONNACK 0x86');
    assert.equal(code('token-revoked'), 'CONNACK 0x87');
    assert.equal(code('client-id-mismatch'), 'CONNACK 0x87');
    assert.equal(code('identifier-rejected'), 'CONNACK 0x85');
    assert.equal(code('too-many-connections'), 'CONNACK 0x97');
    assert.equal(code('journal-full'), 'PUBACK 0x97');
    assert.equal(code('publish-denied'), 'PUBACK 0x87');
    assert.equal(code('invalid-stream'), 'PUBACK 0x90');
    assert.equal(code('invalid-command-result'), 'PUBACK 0x99');
    assert.equal(code('packet-too-large'), 'DISCONNECT 0x95');
    assert.equal(code('subscribe-denied'), 'SUBACK 0x87');
  });

  it('refusals - the device link statuses: who is UNAUTHENTICATED or PERMISSION_DENIED, what INVALID_ARGUMENT, room RESOURCE_EXHAUSTED', () => {
    const byStatus = new Map<string, string[]>();
    for (const reason of DEVICE_LINK_REFUSALS) {
      const name = status[grpcStatus(reason)];
      byStatus.set(name, [...(byStatus.get(name) ?? []), reason]);
    }
    assert.deepEqual(Object.fromEntries(byStatus), {
      INVALID_ARGUMENT: [
        'identifier-rejected',
        'protocol',
        'payload-too-large',
        'invalid-stream',
        'seq-not-increasing',
        'seq-skipped',
      ],
      UNAUTHENTICATED: [
        'token-missing',
        'token-malformed',
        'token-bad-signature',
        'token-wrong-algorithm',
        'token-expired',
        'token-not-yet-valid',
        'token-missing-claims',
      ],
      PERMISSION_DENIED: ['token-wrong-audience', 'token-revoked', 'client-id-mismatch'],
      RESOURCE_EXHAUSTED: ['too-many-connections', 'journal-full'],
      UNAVAILABLE: ['journal-unavailable'],
    });
    assert.deepEqual(
      DISCONNECT_REASONS.map((reason) => status[DISCONNECTS[reason].grpc]),
      ['UNAUTHENTICATED', 'PERMISSION_DENIED', 'ABORTED'],
    );
  });
});
