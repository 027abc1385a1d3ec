/** What an MQTT device publishes as a command result (gateway/src/ingress/command-results.ts). */
import assert from 'node:assert/strict';
import { CommandStatus } from '@fleetgate/protos';
import { parseCommandResult } from '../../gateway/src/ingress/command-results.ts';

const parse = (json: string) => parseCommandResult('c1', Buffer.from(json));

describe('command results', function () {
  it('command results - the three statuses, with a payload kept as JSON and a message', () => {
    assert.deepEqual(parse('{"status":"succeeded","payload":{"rebooted":true}}'), {
      commandId: 'c1',
      status: CommandStatus.COMMAND_STATUS_SUCCEEDED,
      payload: Buffer.from('{"rebooted":true}'),
      message: '',
    });
    assert.equal(parse('{"status":"failed","message":"disk full"}')?.message, 'disk full');
    assert.equal(parse('{"status":"failed"}')?.status, CommandStatus.COMMAND_STATUS_FAILED);
    assert.equal(parse('{"status":"rejected"}')?.status, CommandStatus.COMMAND_STATUS_REJECTED);
    assert.deepEqual(parse('{"status":"rejected"}')?.payload, Buffer.alloc(0));
  });

  it('command results - not JSON, another status, or a message that is not a string: unreadable', () => {
    for (const json of [
      '',
      'ok',
      'null',
      '[]',
      '{}',
      '{"status":"delivered"}',
      '{"status":1}',
      '{"status":"failed","message":7}',
    ])
      assert.equal(parse(json), undefined, json);
  });
});
