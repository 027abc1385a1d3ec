/**
 * MQTT over WebSockets (--ws, --wss) against the real listeners: mqtt.js over ws and wss in Node (MQTT 3.1.1 and
 * 5), a page in headless Chromium, the subprotocol rule [MQTT-6.0.0-3], and the counts by transport in /metrics.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import WebSocket from 'ws';
import { launchBrowser, type BrowserSession } from '../support/browser.ts';
import { makeTestPki, type TestPki } from '../support/certs.ts';
import { startInProcess, type InProcessStack } from '../support/in-process.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { waitUntil } from '../support/test-device.ts';

const MQTT_BROWSER_BUNDLE = join(createRequire(import.meta.url).resolve('mqtt'), '../../dist/mqtt.min.js');

describe('mqtt over websockets', function () {
  this.timeout(30_000);
  const dir = useTempDir();
  let pki: TestPki;
  let stack: InProcessStack;
  let clients: MqttClient[] = [];

  beforeEach(async () => {
    pki = await makeTestPki(join(dir.path, 'pki'));
    stack = await startInProcess(dir.path, {
      ws: { host: '127.0.0.1', port: 0 },
      wss: { host: '127.0.0.1', port: 0 },
      tls: { certFile: pki.file('server.pem'), keyFile: pki.file('server.key'), clientAuth: false },
    });
  });
  afterEach(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    clients = [];
    await stack.close();
  });

  const url = (transport: 'ws' | 'wss') => `${transport}://127.0.0.1:${stack.gateway.mqttAddresses[transport]!.port}/mqtt`;
  const connect = async (transport: 'ws' | 'wss', clientId: string, options: Partial<IClientOptions> = {}) => {
    const client = await mqtt.connectAsync(url(transport), {
      clientId,
      reconnectPeriod: 0,
      ...(transport === 'wss' ? { ca: readFileSync(pki.file('ca.pem')) } : {}),
      ...options,
    });
    clients.push(client);
    return client;
  };
  const metrics = async () => {
    const admin = stack.gateway.adminAddress!;
    return (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text();
  };

  it('ws - mqtt.js over ws and wss, MQTT 3.1.1 and 5: journaled, refused the same way, counted by transport and version', async () => {
    const plain = await connect('ws', 'dev-ws4', { protocolVersion: 4 });
    const v5 = await connect('ws', 'dev-ws5', { protocolVersion: 5 });
    const secure = await connect('wss', 'dev-wss5', { protocolVersion: 5 });
    await plain.publishAsync('devices/dev-ws4/telemetry', 'a', { qos: 1 });
    await v5.publishAsync('devices/dev-ws5/telemetry', 'b', { qos: 1 });
    await secure.publishAsync('devices/dev-wss5/telemetry', 'c', { qos: 2 });
    // The ACL holds on WebSockets as on TCP: MQTT 5 gets PUBACK 0x87, the connection stays.
    await assert.rejects(
      v5.publishAsync('devices/dev-other/telemetry', 'x', { qos: 1 }),
      (e: Error & { code?: number }) => e.code === 0x87,
    );
    assert.equal(v5.connected, true);
    await waitUntil('three at the cloud', async () => (await stack.cloud.stats()).records === 3);
    const { ingress } = await stack.gateway.stats();
    assert.equal(ingress.protocols.ws['3.1.1'].connected, 1);
    assert.equal(ingress.protocols.ws['5'].connected, 1);
    assert.equal(ingress.protocols.wss['5'].connections, 1);
    assert.equal(ingress.protocols.tcp['5'].connections, 0);
    assert.match(ingress.listeners.ws!, /^127\.0\.0\.1:\d+$/);
    const text = await metrics();
    assert.match(text, /fleetgate_mqtt_connections_total\{transport="ws",version="3\.1\.1"\} 1/);
    assert.match(text, /fleetgate_mqtt_connections_total\{transport="wss",version="5"\} 1/);
    assert.match(text, /fleetgate_mqtt_connected\{transport="ws",version="5"\} 1/);
  });

  it('ws - the payload limit and the frame guard hold on WebSockets too', async () => {
    const client = await connect('ws', 'dev-a', { protocolVersion: 5 });
    await assert.rejects(
      client.publishAsync('devices/dev-a/telemetry', Buffer.alloc(300 * 1024), { qos: 1 }),
      (e: Error & { code?: number }) => e.code === 0x97,
    );
    assert.equal((await stack.gateway.stats()).ingress.refusals['payload-too-large'], 1);
  });

  it('ws - a WebSocket without the "mqtt" subprotocol is closed with 1002; plain HTTP gets 426', async () => {
    const socket = new WebSocket(url('ws'));
    const code = await new Promise<number>((resolve) => socket.once('close', (c) => resolve(c)));
    assert.equal(code, 1002);
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const port = stack.gateway.mqttAddresses.ws!.port;
      request({ host: '127.0.0.1', port, path: '/mqtt' }, (res) => {
        res.resume();
        resolve(res.statusCode);
      })
        .on('error', reject)
        .end();
    });
    assert.equal(status, 426);
  });

  describe('in a browser', function () {
    let browser: BrowserSession | undefined;
    let site: Server | undefined;
    after(async () => {
      await browser?.close();
      await new Promise<void>((resolve) => (site ? site.close(() => resolve()) : resolve()));
    });

    it('ws - a page in headless Chromium connects with mqtt.js (MQTT 5), publishes, and gets its own echo', async function () {
      browser = await launchBrowser(this);
      // The dashboard's page, served over HTTP from loopback as a real one would be (Chromium's local network
      // access checks refuse a WebSocket to 127.0.0.1 from about:blank), with mqtt.js' browser bundle.
      const bundle = readFileSync(MQTT_BROWSER_BUNDLE);
      site = createServer((req, res) => {
        if (req.url === '/mqtt.min.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
        else res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><script src="/mqtt.min.js"></script>');
      });
      await new Promise<void>((resolve) => site!.listen(0, '127.0.0.1', resolve));
      const page = await browser.open(`http://127.0.0.1:${(site.address() as AddressInfo).port}/`);
      const result = await page.evaluate<{ reasonCode: number; echo: string }>(`new Promise((resolve, reject) => {
        const client = mqtt.connect(${JSON.stringify(url('ws'))}, { clientId: 'dashboard-1', protocolVersion: 5, reconnectPeriod: 0 });
        client.on('error', (err) => reject(String(err)));
        client.on('close', () => reject('connection closed'));
        client.on('connect', (connack) => {
          client.subscribe('devices/dashboard-1/echo', { qos: 1 }, () => {
            client.on('message', (_topic, payload) => {
              client.end();
              resolve({ reasonCode: connack.reasonCode, echo: new TextDecoder().decode(payload) });
            });
            client.publish('devices/dashboard-1/telemetry', '{"from":"browser"}', { qos: 1 }, () =>
              client.publish('devices/dashboard-1/echo', 'pong', { qos: 1 }));
          });
        });
      })`);
      assert.deepEqual(result, { reasonCode: 0, echo: 'pong' });
      assert.deepEqual(page.problems(), []);
      await waitUntil('the browser telemetry at the cloud', async () => (await stack.cloud.stats()).records === 1);
      assert.equal((await stack.gateway.stats()).ingress.protocols.ws['5'].connections, 1);
    });
  });
});
