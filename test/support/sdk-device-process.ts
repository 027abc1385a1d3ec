/**
 * A device-SDK device as its own process, for crash tests: it sends "<deviceId>:<n>" for n = 1..count through a
 * durable (SQLite) outbox, saying on stdout (JSON lines) when they are all queued, as each is acked, and when its
 * outbox is empty. With count 0 it only resumes: it sends what its outbox still holds.
 *
 *   node --conditions=@fleetgate/source --import tsx test/support/sdk-device-process.ts '{"url": "...", "deviceId": "...", "outboxPath": "...", "count": 3000}'
 */
import { connect } from '@fleetgate/device-sdk';

interface Settings {
  url: string;
  deviceId: string;
  outboxPath: string;
  count: number;
}

const settings = JSON.parse(process.argv[2]!) as Settings;
const say = (event: object) => process.stdout.write(JSON.stringify(event) + '\n');
const client = connect({
  url: settings.url,
  deviceId: settings.deviceId,
  outbox: { type: 'sqlite', path: settings.outboxPath, maxMessages: 100_000 },
  reconnect: { maxMs: 200 },
});
client.on('error', (err) => say({ event: 'error', message: err.message }));
for (let n = 1; n <= settings.count; n++) {
  void client.send(`${settings.deviceId}:${n}`).then(
    () => say({ event: 'acked', n }),
    () => {},
  );
}
client.flush();
say({ event: 'queued', count: settings.count, epoch: client.epoch });
while (client.stats().queued > 0) await new Promise((resolve) => setTimeout(resolve, 20));
say({ event: 'drained' });
await client.close();
