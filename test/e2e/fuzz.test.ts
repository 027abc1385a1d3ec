/**
 * Fuzzing live processes: 100,000 malformed or mutated MQTT packets at a gateway, and 100,000 garbage frames
 * at a cloud-stub's uplink listener, each while well-behaved devices publish through the same gateway. The
 * process must stay up, the devices must lose nothing, and memory must stay bounded. The seed of each run is
 * in the failure message; FUZZ_SEED=<seed> replays it.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { killAll } from '../support/fleetgate-process.ts';
import { makeFleetKeys } from '../support/fleet-keys.ts';
import { fuzzGrpc } from '../support/fuzz/grpc-fuzzer.ts';
import { fuzzMqtt } from '../support/fuzz/mqtt-fuzzer.ts';
import { fuzzSeed, Random } from '../support/fuzz/random.ts';
import { readCloud, verifyDelivery } from '../support/delivery.ts';
import { Stack } from '../support/stack.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { TestDevice, waitUntil } from '../support/test-device.ts';

/** Resident memory of a process, in MiB. */
function rssMiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

/** Samples a process's RSS until stopped; returns the peak. */
function watchMemory(pid: number): { stop(): { before: number; peak: number } } {
  const before = rssMiB(pid);
  let peak = before;
  const timer = setInterval(() => (peak = Math.max(peak, rssMiB(pid))), 50);
  return {
    stop: () => {
      clearInterval(timer);
      return { before, peak: Math.max(peak, rssMiB(pid)) };
    },
  };
}

const MEMORY_BOUND_MIB = 150;

describe('fuzz (end to end)', function () {
  this.timeout(180_000);
  const dir = useTempDir();
  let devices: TestDevice[] = [];

  afterEach(async () => {
    await Promise.all(devices.map((d) => d.close()));
    devices = [];
    await killAll();
  });

  /** Starts devices publishing through the gateway; returns the check that everything they were told is safe arrived. */
  const withDevices = async (stack: Stack) => {
    devices = Array.from({ length: 5 }, (_, i) => new TestDevice(`good-${i}`, stack.mqttPort, 10));
    await Promise.all(devices.map((d) => d.connected()));
    for (const d of devices) d.run();
    await waitUntil('the good devices publishing', () => devices.every((d) => d.acked.size > 20));
    return async (seed: number) => {
      await Promise.all(devices.map((d) => d.stop()));
      await waitUntil('everything journaled to reach the cloud', async () => {
        const [gw, cloud] = await Promise.all([stack.gatewayStats(), stack.cloudStats()]);
        return gw.journal.rows === 0 && (cloud.gateways['gw-test']?.lastSeq ?? 0) >= gw.journal.lastSeq;
      });
      const report = verifyDelivery(
        readCloud(stack.cloudData).filter((r) => r.gatewayId === 'gw-test' && r.deviceId.startsWith('good-')),
        devices.map((d) => ({ deviceId: d.id, acked: d.acked })),
      );
      assert.deepEqual(
        { ...report, records: 0 },
        { records: 0, lost: [], duplicates: [], outOfOrder: [], duplicateSeqs: [] },
        `seed ${seed}`,
      );
    };
  };

  it('fuzz - 100,000 malformed MQTT packets: the gateway stays up, good devices lose nothing, memory stays bounded', async () => {
    const stack = await Stack.start(dir.path);
    const verify = await withDevices(stack);
    const seed = fuzzSeed();
    const memory = watchMemory(stack.gateway.pid);
    const result = await fuzzMqtt({ port: stack.mqttPort, packets: 100_000, concurrency: 64, random: new Random(seed) });
    const { before, peak } = memory.stop();
    assert.ok(result.packets >= 100_000);
    assert.ok(stack.gateway.running, `the gateway died (seed ${seed})`);
    assert.ok((await fetch(`http://127.0.0.1:${stack.gatewayAdminPort}/healthz`)).ok, `seed ${seed}`);
    const { ingress } = await stack.gatewayStats();
    assert.ok(
      ingress.clientErrors > result.connections / 2,
      `the garbage was refused: ${ingress.clientErrors} of ${result.connections} (seed ${seed})`,
    );
    assert.ok(peak - before < MEMORY_BOUND_MIB, `RSS ${before.toFixed(0)} -> ${peak.toFixed(0)} MiB (seed ${seed})`);
    await verify(seed);
  });

  it('fuzz - 100,000 garbage frames on the uplink: the cloud-stub stays up, refuses each precisely, the real gateway loses nothing', async () => {
    const keys = await makeFleetKeys(join(dir.path, 'keys'));
    const tokenFile = join(dir.path, 'gw.token');
    writeFileSync(tokenFile, await keys.gateway('gw-test'));
    const stack = await Stack.start(dir.path, [], {
      cloud: ['--gateway-key', keys.publicKeyFile],
      gateway: ['--allow-anonymous', '--token-file', tokenFile],
    });
    const verify = await withDevices(stack);
    const seed = fuzzSeed();
    const memory = watchMemory(stack.cloud.pid);
    // The fuzzer holds a valid token, for another gateway: a compromised gateway attacking the backend.
    const result = await fuzzGrpc({
      port: stack.cloudPort,
      frames: 100_000,
      concurrency: 32,
      token: await keys.gateway('gw-fuzz'),
      gatewayId: 'gw-fuzz',
      random: new Random(seed),
    });
    const { before, peak } = memory.stop();
    assert.ok(result.frames >= 100_000);
    assert.ok(stack.cloud.running, `the cloud-stub died (seed ${seed})`);
    // Refusals come as precise statuses: INVALID_ARGUMENT, PERMISSION_DENIED, UNAUTHENTICATED, INTERNAL (undecodable).
    for (const code of [3, 7, 16])
      assert.ok((result.statuses[code] ?? 0) > 0, `status ${code} seen (${JSON.stringify(result.statuses)}, seed ${seed})`);
    assert.ok(peak - before < MEMORY_BOUND_MIB, `RSS ${before.toFixed(0)} -> ${peak.toFixed(0)} MiB (seed ${seed})`);
    const uplink = (await stack.gatewayStats()).upstreams[0]!;
    assert.equal(uplink.state, 'ready');
    await verify(seed);
    const strangers = readCloud(stack.cloudData).filter((r) => r.gatewayId === 'gw-test' && !r.deviceId.startsWith('good-'));
    assert.deepEqual(strangers, [], "nothing was stored under the real gateway's name by the fuzzer");
  });
});
