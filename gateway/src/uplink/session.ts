/**
 * The session handshake (uplink.proto, Hello and Welcome): the gateway says who it is and where its journal
 * stands; the backend answers with its limits, the first credit and the last seq it holds of this gateway,
 * which is the journal's chance to renumber (a journal the backend does not know: UplinkOptions.onWelcome)
 * before anything is sent.
 */
import type { ClientDuplexStream } from '@grpc/grpc-js';
import type { DownlinkFrame, UplinkFrame, Welcome } from '@fleetgate/protos';
import type { UplinkSettings } from './uplink-settings.ts';

export type UplinkCall = ClientDuplexStream<UplinkFrame, DownlinkFrame>;

/**
 * Hello: the gateway's id and version; lastAckedSeq, below which the backend has everything (it resends
 * nothing there); and how often a silent backend is asked whether it is still there.
 */
export function helloFrame(gatewayId: string, version: string, lastAckedSeq: number, deadAfterMs: number): UplinkFrame {
  return {
    frame: { $case: 'hello', value: { gatewayId, version, lastAckedSeq, heartbeatIntervalMs: Math.floor(deadAfterMs / 2) } },
  };
}

/** What a Welcome makes of the session: batch limits (the backend's can only make batches smaller) and the first credit. */
export function sessionTerms(own: UplinkSettings, welcome: Welcome): { settings: UplinkSettings; credit: number } {
  const limits = welcome.limits;
  const narrow = (mine: number, theirs: number | undefined) => (theirs ? Math.min(mine, theirs) : mine);
  return {
    settings: {
      ...own,
      maxBatchRecords: narrow(own.maxBatchRecords, limits?.maxBatchRecords),
      maxBatchBytes: narrow(own.maxBatchBytes, limits?.maxBatchBytes),
    },
    // Credit counts from Welcome on; 0 there means the gateway's own window (uplink.proto, Limits).
    credit: limits?.maxBatchesInFlight || own.window,
  };
}
