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
import mqttPacket from 'mqtt-packet';

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

  /**
   * An MQTT 5 PUBACK or PUBREC refusing a PUBLISH with its reason code (3.4.2.1, 3.5.2.1) and, unless the client
   * asked for no problem information [MQTT-3.1.2-29], a Reason String. Rare: encoded by mqtt-packet.
   */
  writeRefusal(
    socket: Socket,
    ack: 'puback' | 'pubrec',
    messageId: number,
    reasonCode: number,
    reasonString: string | undefined,
  ): void {
    if (socket.destroyed || !socket.writable) return;
    const properties = reasonString === undefined ? undefined : { reasonString: reasonString.slice(0, 200) };
    socket.write(
      mqttPacket.generate({ cmd: ack, messageId, reasonCode, ...(properties ? { properties } : {}) }, { protocolVersion: 5 }),
    );
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
  /** QoS 1 messages appended, and settled, since the connection began: orders refusals among the PUBACKs. */
  appended = 0;
  private settledCount = 0;
  private held: Array<() => void> = [];
  /** Refusal acks waiting for the PUBACKs of the PUBLISHes that came before them [MQTT-4.6.0-2]. */
  private after: Array<{ ticket: number; write: () => void }> = [];

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

  /** Writes an ack now, or right after the PUBACKs still pending for earlier PUBLISHes. */
  inOrder(write: () => void): void {
    if (this.pending === 0) return write();
    this.after.push({ ticket: this.appended, write });
  }

  /** A PUBACK went out (or its message failed): release held PUBLISHes once below half the bound. */
  settled(): void {
    this.pending--;
    this.settledCount++;
    while (this.after.length > 0 && this.after[0]!.ticket <= this.settledCount) this.after.shift()!.write();
    if (this.held.length > 0 && this.pending <= this.maxUnacked / 2) {
      const held = this.held;
      this.held = [];
      for (const proceed of held) proceed();
    }
  }
}
