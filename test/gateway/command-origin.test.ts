/** With several upstreams, a command's statuses go back to the upstream that sent it, and only its confirmation counts. */
import assert from 'node:assert/strict';
import { silentLogger } from '@fleetgate/common';
import { CommandStatus, type UplinkFrame } from '@fleetgate/protos';
import { CommandCenter } from '../../gateway/src/commands/command-center.ts';
import { SqliteCommandStore } from '../../gateway/src/commands/command-store-sqlite.ts';
import { DeviceRegistry, type DeviceChannel } from '../../gateway/src/commands/device-registry.ts';
import { useTempDir } from '../support/temp-dir.ts';

describe('commands with several upstreams', function () {
  this.timeout(10_000);
  const dir = useTempDir();

  it("commands - results go to the command's upstream; device statuses to every upstream; another upstream's ack is not a confirmation", () => {
    const sent: Array<{ to: string | undefined; frame: UplinkFrame['frame'] }> = [];
    const store = new SqliteCommandStore({ dir: dir.path, durability: 'process' });
    const registry = new DeviceRegistry();
    const center = new CommandCenter({
      store,
      registry,
      logger: silentLogger,
      upstream: { send: (frames, to) => sent.push(...frames.map((f) => ({ to, frame: f.frame }))) },
    });
    try {
      const delivered: string[] = [];
      const channel: DeviceChannel = { protocol: 'sdk', deliver: (command) => delivered.push(command.commandId) };
      registry.connected('valve-1', channel);
      assert.deepEqual(
        sent.map((s) => [s.to, s.frame?.$case]),
        [[undefined, 'deviceStatus']],
        'a device coming online: every upstream hears',
      );

      sent.length = 0;
      center.fromBackend(
        { commandId: 'c-1', deviceId: 'valve-1', name: 'open', payload: Buffer.from('{}'), expiresAtMs: Date.now() + 60_000 },
        'control',
      );
      assert.deepEqual(delivered, ['c-1']);
      assert.deepEqual(
        sent.map((s) => [s.to, s.frame?.$case]),
        [['control', 'commandResult']],
      );

      center.fromDevice('valve-1', {
        commandId: 'c-1',
        status: CommandStatus.COMMAND_STATUS_SUCCEEDED,
        payload: Buffer.from('ok'),
        message: '',
      });
      // The bulk upstream acks a result it never asked for: not a confirmation, the status stays to report.
      center.backendAck({ commandId: 'c-1', status: CommandStatus.COMMAND_STATUS_SUCCEEDED }, 'bulk');
      assert.equal(store.unreported().length, 1);

      sent.length = 0;
      center.uplinkReady('bulk');
      assert.deepEqual(
        sent.map((s) => [s.to, s.frame?.$case]),
        [['bulk', 'deviceStatus']],
        "bulk reconnects: statuses only, not control's results",
      );
      sent.length = 0;
      center.uplinkReady('control');
      assert.deepEqual(
        sent.map((s) => [s.to, s.frame?.$case]),
        [
          ['control', 'deviceStatus'],
          ['control', 'commandResult'],
        ],
      );

      center.backendAck({ commandId: 'c-1', status: CommandStatus.COMMAND_STATUS_SUCCEEDED }, 'control');
      assert.equal(store.unreported().length, 0);
      assert.equal(store.size, 0, 'confirmed final: forgotten');
    } finally {
      center.close();
      store.close();
    }
  });
});
