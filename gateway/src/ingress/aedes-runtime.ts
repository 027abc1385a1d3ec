/** What an aedes 1.x broker has at run time beyond its published types, and ingress uses. */
import type { Aedes, Client, PublishPacket } from 'aedes';

export interface AedesRuntime {
  /** The connected clients by client id. */
  clients: Record<string, Client | undefined>;
  /** QoS 2: the PUBLISHes aedes holds until their PUBREL (a DUP of one of them is not new). */
  persistence: { incomingGetPacket(client: Client, packet: PublishPacket): Promise<unknown> };
}

export function aedesRuntime(broker: Aedes): AedesRuntime {
  return broker as unknown as AedesRuntime;
}
