/**
 * The simulated devices: real mqtt.js clients and real device-SDK clients, each with its ledger. A device sends
 * what the fleet's pacer hands it, keeps at most `window` messages unacknowledged, and reconnects by itself.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { connect, ConnectivityState, type DeviceClient } from '@fleetgate/device-sdk';
import type { DeviceCredentials } from './credentials.ts';
import { DeviceLedger } from './ledger.ts';
import type { PayloadMaker } from './payload.ts';

export interface SimDevice {
  readonly ledger: DeviceLedger;
  readonly connected: boolean;
  /** Whether it may take another message now (its window of unacknowledged messages has room). */
  readonly ready: boolean;
  start(): void;
  /** Sends message n, taken at timeMs. */
  send(n: number, timeMs: number): void;
  /** Drops the connection at once, as a lost network would; the device reconnects by itself. */
  drop(): void;
  /** Disconnects for good. */
  close(): Promise<void>;
}

export interface DeviceSettings {
  qos: 0 | 1;
  window: number;
  makePayload: PayloadMaker;
  credentials: DeviceCredentials;
  onError: (deviceId: string, err: Error) => void;
}

export class MqttSimDevice implements SimDevice {
  readonly ledger: DeviceLedger;
  private client: MqttClient | undefined;
  private closed = false;

  constructor(
    readonly id: string,
    private readonly url: string,
    private readonly settings: DeviceSettings,
    /** 4: MQTT 3.1.1, 5: MQTT 5. */
    private readonly protocolVersion: 4 | 5 = 4,
  ) {
    this.ledger = new DeviceLedger(id, 'mqtt');
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  get ready(): boolean {
    return (
      this.client !== undefined &&
      (this.settings.qos === 0 ? this.client.connected : this.ledger.inFlight.size < this.settings.window)
    );
  }

  start(): void {
    void this.settings.credentials.token(this.id).then(
      (password) => {
        if (this.closed) return;
        const client = mqtt.connect(this.url, {
          clientId: this.id,
          username: this.id,
          password,
          protocolVersion: this.protocolVersion,
          reconnectPeriod: 200 + Math.floor(Math.random() * 300),
          connectTimeout: 10_000,
        });
        this.client = client;
        client.on('close', () => {
          this.ledger.onConnectionDrop();
          void this.refreshToken();
        });
        client.on('error', (err) => {
          // mqtt.js reconnects by itself; a refused CONNECT (an expired token) gets a fresh token first.
          if ((err as { code?: number }).code === 4 || (err as { code?: number }).code === 5) void this.refreshToken();
          else this.settings.onError(this.id, err);
        });
      },
      (err: Error) => this.settings.onError(this.id, err),
    );
  }

  send(n: number, timeMs: number): void {
    this.ledger.markSent(n, this.settings.qos === 1);
    this.publish(n, this.settings.makePayload(this.id, n, timeMs));
  }

  drop(): void {
    this.client?.stream?.destroy();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.client?.endAsync(true);
  }

  private publish(n: number, payload: string): void {
    this.client!.publish(`devices/${this.id}/telemetry`, payload, { qos: this.settings.qos }, (err) => {
      // mqtt.js resends what it had stored after reconnecting; an error means it dropped the message before
      // storing it (queued while a reconnect replayed its store, and the connection closed again): the device
      // sends it again, as firmware would.
      if (err) {
        if (!this.closed && this.settings.qos === 1) setTimeout(() => this.publish(n, payload), 50);
        return;
      }
      if (this.settings.qos === 1) this.ledger.markAcked(n);
    });
  }

  private async refreshToken(): Promise<void> {
    const token = await this.settings.credentials.token(this.id);
    if (this.client && token !== undefined) this.client.options.password = token;
  }
}

export class SdkSimDevice implements SimDevice {
  readonly ledger: DeviceLedger;
  private client: DeviceClient | undefined;
  private closed = false;

  constructor(
    readonly id: string,
    private readonly url: string,
    private readonly settings: DeviceSettings,
  ) {
    this.ledger = new DeviceLedger(id, 'sdk');
  }

  get connected(): boolean {
    return this.client?.state === ConnectivityState.READY;
  }

  get ready(): boolean {
    return this.client !== undefined && this.ledger.inFlight.size < this.settings.window;
  }

  start(): void {
    const credentials = this.settings.credentials;
    this.client = connect({
      url: this.url,
      deviceId: this.id,
      getToken: async () => (await credentials.token(this.id)) ?? '',
      window: this.settings.window,
      reconnect: { initialMs: 100, maxMs: 2000 },
    });
    // No ledger.onConnectionDrop() here: the SDK resends under the same device seq and the gateway stores a
    // message once, so an SDK device's message arriving twice is a duplicate whatever the drops.
    this.client.on('error', (err) => this.settings.onError(this.id, err));
  }

  send(n: number, timeMs: number): void {
    this.ledger.markSent(n, true);
    this.client!.send(this.settings.makePayload(this.id, n, timeMs), {
      timeMs: Math.round(timeMs),
      contentType: 'application/json',
    }).then(
      () => this.ledger.markAcked(n),
      (err: Error) => {
        this.ledger.inFlight.delete(n);
        if (!this.closed) {
          this.ledger.refused++;
          this.settings.onError(this.id, err);
        }
      },
    );
  }

  drop(): void {
    this.client?.reconnect();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.client?.close({ drainTimeoutMs: 0 });
  }
}
