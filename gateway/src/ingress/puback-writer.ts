/**
 * PUBACKs for journaled QoS 1 telemetry, written by the gateway rather than by aedes.
 *
 * Why: aedes sends the PUBACK when authorizePublish calls back, and does not read a connection's next packets
 * until every packet of the current read has been fully handled. Holding the callback until the journal commit
 * (which makes the PUBACK mean "on disk") would therefore stall each connection for a whole commit round trip.
 * Instead ingress hands aedes the PUBLISH as QoS 0 (no PUBACK, no wait) and calls write() here when the commit
 * returned. Commits complete in append order, so each connection's PUBACKs go out in the order its PUBLISHes
 * came [MQTT-4.6.0-2]. Writes are corked per connection until the end of the tick: one syscall per connection
 * per commit, not one per message.
 *
 * Bound: a connection may have at most `maxUnacked` PUBACKs pending. Past that, ingress holds the
 * authorizePublish callback (see ConnectionFlow), which stops aedes reading that socket: TCP backpressure.
 */
import type { Socket } from 'node:net';

const PUBACK = 0x40;

export class PubackWriter {
  private readonly corked = new Set<Socket>();
  private flushScheduled = false;

  write(socket: Socket, messageId: number): void {
    if (socket.destroyed || !socket.writable) return;
    if (!this.corked.has(socket)) {
      socket.cork();
      this.corked.add(socket);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        process.nextTick(this.uncorkAll);
      }
    }
    const packet = Buffer.allocUnsafe(4);
    packet[0] = PUBACK;
    packet[1] = 2;
    packet.writeUInt16BE(messageId, 2);
    socket.write(packet);
  }

  private readonly uncorkAll = (): void => {
    this.flushScheduled = false;
    for (const socket of this.corked) socket.uncork();
    this.corked.clear();
  };
}

/**
 * One connection's QoS 1 telemetry on its way to the journal: how many PUBACKs are pending, and the PUBLISHes
 * held back (their authorizePublish callbacks) while there are too many.
 */
export class ConnectionFlow {
  pending = 0;
  private held: Array<() => void> = [];

  constructor(
    private readonly maxUnacked: number,
    /** Told each time a PUBLISH is held back. */
    private readonly onHold: () => void,
  ) {}

  /** Lets aedes go on reading now, or once enough PUBACKs have gone out. */
  admit(proceed: () => void, congested: boolean): void {
    if (this.pending > this.maxUnacked || congested) {
      this.held.push(proceed);
      this.onHold();
    } else {
      proceed();
    }
  }

  /** A PUBACK went out (or its message failed): release held PUBLISHes once below half the bound. */
  settled(): void {
    this.pending--;
    if (this.held.length > 0 && this.pending <= this.maxUnacked / 2) {
      const held = this.held;
      this.held = [];
      for (const proceed of held) proceed();
    }
  }
}
