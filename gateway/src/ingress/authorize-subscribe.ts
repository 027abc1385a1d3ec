/**
 * The ACL on the way out, aedes' two hooks:
 *   authorizeSubscribe  each filter of a SUBSCRIBE, granted unless everything it could match is denied (acl.ts);
 *                       a refused one gets 0x80 in the SUBACK (MQTT 5: 0x87) [MQTT-3.9.3], the connection stays
 *                       (subscribe-denied, refusals.ts)
 *   authorizeForward    each message a subscription would deliver: a deny holds inside a broader subscription,
 *                       and after the rules change
 */
import type { AedesPublishPacket, Client, Subscription } from 'aedes';
import type { Acl } from './acl.ts';
import type { IngressCounters } from './ingress-counters.ts';

export class SubscribeHooks {
  constructor(
    /** The rules in force (replaced when the ACL file is re-read). */
    private readonly rules: { readonly acl: Acl },
    private readonly counters: IngressCounters,
  ) {}

  readonly authorizeSubscribe = (
    client: Client,
    subscription: Subscription,
    callback: (err: Error | null, subscription?: Subscription | null) => void,
  ): void => {
    if (this.rules.acl.canSubscribe(client.id, subscription.topic)) return callback(null, subscription);
    this.counters.refused('subscribe-denied', { deviceId: client.id, filter: subscription.topic.slice(0, 200) });
    callback(null, null);
  };

  readonly authorizeForward = (client: Client, packet: AedesPublishPacket): AedesPublishPacket | null =>
    this.rules.acl.canReceive(client.id, packet.topic) ? packet : null;
}
