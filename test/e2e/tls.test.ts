/** TLS and mTLS on every link, with certificates made at test time: device -> gateway -> cloud-stub. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type IClientOptions } from 'mqtt';
import { loadTlsServer } from '@fleetgate/common';
import { makeTestPki, type TestPki } from '../support/certs.ts';
import { readCloud } from '../support/delivery.ts';
import { startInProcess, type InProcessStack } from '../support/in-process.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { waitUntil } from '../support/test-device.ts';

describe('tls', function () {
  this.timeout(30_000);
  const dir = useTempDir();
  let pki: TestPki;
  let stack: InProcessStack | undefined;

  beforeEach(async () => {
    pki = await makeTestPki(join(dir.path, 'pki'));
  });
  afterEach(async () => {
    await stack?.close();
    stack = undefined;
  });

  /** Gateway with MQTT over TLS only (mTLS when asked), uplink over TLS to a cloud-stub on TLS (mTLS when asked). */
  const start = async ({ deviceMtls = false, uplinkMtls = false, gatewayClientCert = true } = {}) => {
    const cloudTls = loadTlsServer(
      { certFile: pki.file('server.pem'), keyFile: pki.file('server.key'), caFile: pki.file('ca.pem'), clientAuth: uplinkMtls },
      { cert: 'cert', key: 'key', ca: 'ca', clientAuth: 'clientAuth' },
    );
    stack = await startInProcess(
      dir.path,
      {
        mqtt: null,
        mqtts: { host: '127.0.0.1', port: 0 },
        tls: {
          certFile: pki.file('server.pem'),
          keyFile: pki.file('server.key'),
          caFile: pki.file('ca.pem'),
          clientAuth: deviceMtls,
        },
        upstream: {
          tls: {
            caFile: pki.file('ca.pem'),
            serverName: 'localhost',
            ...(gatewayClientCert ? { certFile: pki.file('client-gw-test.pem'), keyFile: pki.file('client-gw-test.key') } : {}),
          },
        },
      },
      { tls: cloudTls },
    );
    return stack;
  };

  const tlsOptions = (s: InProcessStack, options: Partial<IClientOptions>): IClientOptions => ({
    protocol: 'mqtts',
    host: '127.0.0.1',
    port: s.gateway.mqttAddresses.tls!.port,
    servername: 'localhost',
    clientId: 'dev-1',
    ca: readFileSync(pki.file('ca.pem')),
    reconnectPeriod: 0,
    connectTimeout: 5000,
    ...options,
  });
  const connect = (s: InProcessStack, options: Partial<IClientOptions> = {}) => mqtt.connectAsync(tlsOptions(s, options));
  /**
   * Whether the gateway let the device in. (When the server rejects a client certificate after a TLS 1.3
   * handshake, mqtt.js reports only 'close', never 'error', so connectAsync would wait forever.)
   */
  const outcome = (s: InProcessStack, options: Partial<IClientOptions> = {}) =>
    new Promise<'connected' | 'refused'>((resolve) => {
      const client = mqtt.connect(tlsOptions(s, options));
      client.once('connect', () => client.end(true, () => resolve('connected')));
      client.once('error', () => client.end(true, () => resolve('refused')));
      client.once('close', () => client.end(true, () => resolve('refused')));
    });

  it('tls - MQTT over TLS into the gateway, TLS on the uplink: the message arrives; no plain listener', async () => {
    const s = await start();
    assert.equal(s.gateway.mqttAddresses.tcp, undefined);
    const client = await connect(s);
    await client.publishAsync('devices/dev-1/telemetry', 'over tls', { qos: 1 });
    await client.endAsync();
    await waitUntil('at the cloud', async () => (await s.cloud.stats()).records === 1);
    assert.equal(Buffer.from(readCloud(join(dir.path, 'cloud'))[0]!.payload, 'base64').toString(), 'over tls');
    assert.equal((await s.gateway.stats()).ingress.listeners.mqtts, `127.0.0.1:${s.gateway.mqttAddresses.tls!.port}`);
  });

  it("tls - a device that does not trust the gateway's CA does not connect", async () => {
    const s = await start();
    await assert.rejects(
      connect(s, { ca: readFileSync(pki.file('untrusted-ca.pem')) }),
      /self-signed certificate|unable to verify|certificate/i,
    );
  });

  it('tls - mTLS on MQTT: a device certificate from the CA connects; none, or an untrusted one, is refused and counted', async () => {
    const s = await start({ deviceMtls: true });
    const good = await connect(s, {
      cert: readFileSync(pki.file('client-dev-1.pem')),
      key: readFileSync(pki.file('client-dev-1.key')),
    });
    await good.publishAsync('devices/dev-1/telemetry', 'with a certificate', { qos: 1 });
    await good.endAsync();
    assert.equal(await outcome(s), 'refused', 'no client certificate');
    assert.equal(
      await outcome(s, {
        cert: readFileSync(pki.file('untrusted-client.pem')),
        key: readFileSync(pki.file('untrusted-client.key')),
      }),
      'refused',
      'untrusted',
    );
    await waitUntil(
      'two refused handshakes counted',
      async () => (await s.gateway.stats()).ingress.refusals['tls-handshake'] === 2,
    );
  });

  it('tls - mTLS on the uplink: a gateway with a certificate from the CA streams; one without cannot connect', async () => {
    const s = await start({ uplinkMtls: true });
    await waitUntil(
      'uplink ready with a client certificate',
      async () => (await s.gateway.stats()).upstreams[0]!.state === 'ready',
    );
    await s.close();
    stack = await start({ uplinkMtls: true, gatewayClientCert: false });
    await waitUntil('the refused handshake seen by the uplink', async () => {
      const uplink = (await stack!.gateway.stats()).upstreams[0]!;
      return uplink.state !== 'ready' && uplink.failures >= 1;
    });
    assert.notEqual((await stack.gateway.stats()).upstreams[0]!.state, 'ready');
  });
});
