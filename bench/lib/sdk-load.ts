/**
 * The device-SDK loader of the benchmarks, run as its own process: `connections` SDK devices, each keeping
 * `inflight` sends unresolved and sending the next as each resolves (resolved = committed by the gateway).
 * stdout: {"event":"measuring"}, {"event":"measured"}, then {"event":"result", ...LoadResult} (mqtt-load.ts).
 *
 *   node build/bench/sdk-load.js '<json LoadSettings>'
 */
import { latencyHistogram, percentilesMs, recordMs } from './latency.ts';
import { connect, ConnectivityState } from '@fleetgate/device-sdk';
import type { LoadResult, LoadSettings } from './mqtt-load.ts';

const settings = JSON.parse(process.argv[2]!) as LoadSettings;
const emit = (event: object) => process.stdout.write(JSON.stringify(event) + '\n');
const histogram = latencyHistogram();
const payload = Buffer.alloc(settings.payloadBytes, 0x61);
let measuring = false;
let stopped = false;
let acked = 0;
let totalAcked = 0;
let outstanding = 0;

const clients = Array.from({ length: settings.connections }, (_, i) =>
  connect({
    url: `${settings.host}:${settings.port}`,
    deviceId: `${settings.clientPrefix}${i}`,
    window: settings.inflight * 2,
    outbox: { maxMessages: settings.inflight * 4 },
  }),
);
await Promise.all(clients.map((c) => c.connectivity.waitFor(ConnectivityState.READY)));

const sendNext = (client: (typeof clients)[number]) => {
  if (stopped) return;
  const started = performance.now();
  outstanding++;
  void client.send(payload).then(() => {
    outstanding--;
    totalAcked++;
    if (measuring) {
      acked++;
      recordMs(histogram, performance.now() - started);
    }
    sendNext(client);
  });
};
for (const client of clients) for (let w = 0; w < settings.inflight; w++) sendNext(client);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
await sleep(settings.warmupSeconds * 1000);
measuring = true;
emit({ event: 'measuring' });
const cpuBefore = process.cpuUsage();
const started = performance.now();
await sleep(settings.seconds * 1000);
measuring = false;
const elapsed = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpuBefore);
emit({ event: 'measured' });
stopped = true;
const deadline = Date.now() + 10_000;
while (outstanding > 0 && Date.now() < deadline) await sleep(20);
const result: LoadResult = {
  acked,
  rate: Math.round(acked / elapsed),
  latencyMs: percentilesMs(histogram),
  totalAcked,
  unanswered: outstanding,
  cpuSeconds: +((cpu.user + cpu.system) / 1e6).toFixed(2),
};
emit({ event: 'result', ...result });
await Promise.all(clients.map((c) => c.close({ drainTimeoutMs: 1000 }).catch(() => {})));
process.exit(0);
