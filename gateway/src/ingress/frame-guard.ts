/**
 * Refuses oversized MQTT packets before they are buffered. mqtt-packet (aedes' parser) has no size limit: a
 * client announcing a 256 MiB packet would have every byte of it kept in memory before ingress could refuse the
 * payload. The guard reads only the fixed headers [MQTT-2.2]: packet type, then the remaining length (1 to 4
 * bytes, 7 bits each), skips the bodies, and ends the connection as soon as a header announces more than the
 * limit. It runs on the bytes aedes reads from the socket (aedes pulls with socket.read(), which is wrapped),
 * so it costs a few operations per packet, not per byte.
 */
import type { Duplex } from 'node:stream';

export class MqttFrameGuard {
  /** Body bytes of the current packet still to pass. */
  private skip = 0;
  /** 0: the next byte is a packet type; 1 to 4: reading the remaining length. */
  private state = 0;
  private length = 0;
  private multiplier = 1;

  constructor(private readonly maxPacketBytes: number) {}

  /** Follows the packets in `chunk`; returns why the connection must end, or undefined. */
  scan(chunk: Buffer): string | undefined {
    let i = 0;
    while (i < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        this.skip -= n;
        i += n;
        continue;
      }
      const byte = chunk[i++]!;
      if (this.state === 0) {
        this.state = 1;
        this.length = 0;
        this.multiplier = 1;
        continue;
      }
      this.length += (byte & 0x7f) * this.multiplier;
      this.multiplier *= 128;
      if (byte & 0x80) {
        if (++this.state > 4) return 'malformed remaining length (more than 4 bytes) [MQTT-2.2.3]';
        continue;
      }
      if (this.length > this.maxPacketBytes) return `a packet of ${this.length} bytes, over the limit of ${this.maxPacketBytes}`;
      this.skip = this.length;
      this.state = 0;
    }
    return undefined;
  }
}

/**
 * Ends `socket` as soon as what aedes reads from it holds an oversized packet: onRefused is told first, and
 * returns true when it ends the connection itself (an MQTT 5 DISCONNECT 0x95).
 */
export function guardFrames(socket: Duplex, maxPacketBytes: number, onRefused: (reason: string) => boolean): void {
  const guard = new MqttFrameGuard(maxPacketBytes);
  const read = socket.read.bind(socket);
  let refused = false;
  socket.read = (size?: number) => {
    if (refused) return null;
    const chunk = read(size) as Buffer | string | null;
    if (chunk && typeof chunk !== 'string') {
      const refusal = guard.scan(chunk);
      if (refusal !== undefined) {
        refused = true;
        if (!onRefused(refusal)) socket.destroy();
        return null;
      }
    }
    return chunk;
  };
}
