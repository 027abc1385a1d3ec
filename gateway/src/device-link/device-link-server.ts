/**
 * The gateway's device link listener (--device-grpc): a grpc-js server for DeviceLink.Connect, on TLS when the
 * gateway has a certificate (the same one as MQTT over TLS, with the same mTLS choice). Each stream is a
 * DeviceSession; this class owns the listener, the sessions and their counters. The listener also answers
 * grpc.health.v1: SERVING (for "" and fleetgate.v1.DeviceLink) once bound, NOT_SERVING from the start of close().
 */
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { formatHostPort, type HostPort, LogSampler } from '@fleetgate/core';
import { GrpcHealth, grpcServiceName, ListenError, type TlsServerMaterial, type TokenClaims } from '@fleetgate/common';
import { DeviceLinkService } from '@fleetgate/protos';
import { DEVICE_LINK_REFUSALS, REFUSALS, type DeviceLinkRefusal, type DisconnectReason } from '../refusals.ts';
import { DeviceDisconnectedError, GatewayShutdownError } from '../errors.ts';
import { DeviceSession, type DeviceCall, type DeviceSessionDeps } from './device-session.ts';

export interface DeviceLinkStats {
  listen: string;
  tls: boolean;
  devicesConnected: number;
  messages: number;
  bytes: number;
  /** Messages resent at or below the device's last durable seq: acked again, not stored. */
  resent: number;
  refusals: Record<DeviceLinkRefusal, number>;
  disconnects: Record<DisconnectReason, number>;
}

export type DeviceLinkOptions = Omit<DeviceSessionDeps, 'sessions' | 'refuse' | 'counters'> & {
  listen: HostPort;
  tls?: TlsServerMaterial;
};

export class DeviceLinkServer {
  private readonly server = new Server({ 'grpc.max_receive_message_length': 4 << 20 });
  private readonly health = new GrpcHealth(new HealthImplementation(), [grpcServiceName(DeviceLinkService)]);
  private readonly sessions = new Map<string, DeviceSession>();
  private readonly sampler = new LogSampler(1000);
  private readonly refusals = Object.fromEntries(DEVICE_LINK_REFUSALS.map((r) => [r, 0])) as Record<DeviceLinkRefusal, number>;
  private readonly counters = { messages: 0, bytes: 0, resent: 0, tokenExpired: 0, takenOver: 0 };
  private revoked = 0;
  address!: HostPort;

  private constructor(private readonly options: DeviceLinkOptions) {
    const deps: DeviceSessionDeps = {
      ...options,
      sessions: this.sessions,
      counters: this.counters,
      refuse: (reason, fields) => {
        this.refusals[reason]++;
        const suppressed = this.sampler.take(reason);
        if (suppressed !== undefined)
          options.logger.warn({ reason, ...fields, suppressedSinceLast: suppressed }, REFUSALS[reason].log.grpc);
      },
    };
    this.server.addService(DeviceLinkService, { connect: (call: DeviceCall) => new DeviceSession(call, deps) });
    this.health.addTo(this.server);
  }

  static async start(options: DeviceLinkOptions): Promise<DeviceLinkServer> {
    const link = new DeviceLinkServer(options);
    const tls = options.tls;
    const credentials = tls
      ? ServerCredentials.createSsl(tls.ca ?? null, [{ private_key: tls.key, cert_chain: tls.cert }], tls.clientAuth)
      : ServerCredentials.createInsecure();
    link.address = await new Promise((resolve, reject) => {
      link.server.bindAsync(formatHostPort(options.listen), credentials, (err, port) => {
        if (err)
          reject(
            new ListenError(
              `device link listener (--device-grpc) cannot listen on ${formatHostPort(options.listen)}: ${err.message}`,
              { cause: err },
            ),
          );
        else resolve({ host: options.listen.host, port });
      });
    });
    link.health.serving();
    return link;
  }

  stats(): DeviceLinkStats {
    return {
      listen: formatHostPort(this.address),
      tls: Boolean(this.options.tls),
      devicesConnected: this.sessions.size,
      messages: this.counters.messages,
      bytes: this.counters.bytes,
      resent: this.counters.resent,
      refusals: { ...this.refusals },
      disconnects: {
        'token-expired': this.counters.tokenExpired,
        'token-revoked': this.revoked,
        'taken-over': this.counters.takenOver,
      },
    };
  }

  /** Ends the sessions whose token is no longer valid (after the revocation list changed). */
  endRevoked(isValid: (claims: TokenClaims) => boolean): number {
    let ended = 0;
    // end() removes the session from the map: deleting the entry being visited is safe for a Map iterator.
    for (const session of this.sessions.values()) {
      if (session.claims && !isValid(session.claims)) {
        session.end(new DeviceDisconnectedError('token-revoked'));
        ended++;
      }
    }
    this.revoked += ended;
    return ended;
  }

  async close(): Promise<void> {
    this.health.close();
    for (const session of this.sessions.values()) session.end(new GatewayShutdownError());
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => this.server.forceShutdown(), 2000);
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }
}
