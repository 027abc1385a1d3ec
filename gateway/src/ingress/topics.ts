/**
 * The topic scheme (README "Topics"):
 *   devices/{deviceId}/telemetry            telemetry on the default stream ("")
 *   devices/{deviceId}/telemetry/{stream}   telemetry on a named stream (the rest of the topic, may hold "/")
 *   devices/{deviceId}/commands/{name}/{commandId}     a command to the device (published by the gateway)
 *   devices/{deviceId}/command-results/{commandId}     the device's answer: JSON {"status": "succeeded" |
 *                                           "failed" | "rejected", "payload": any, "message": "why"}
 *   devices/{deviceId}/...                  the device's own space: plain MQTT, not journaled
 * A device may publish and subscribe only under devices/{itsOwnId}/.
 */

import { DEVICE_ID_PATTERN, isLabel } from '@fleetgate/core';

/** Device ids are also topic levels and log fields: no `/ + #`, no control character, 1 to 128 (core/src/ids.ts). */
export const DEVICE_ID = DEVICE_ID_PATTERN;
const MAX_STREAM_LENGTH = 128;

export type DeviceTopic =
  | { kind: 'telemetry'; deviceId: string; stream: string }
  | { kind: 'command-result'; deviceId: string; commandId: string }
  | { kind: 'device'; deviceId: string }
  | { kind: 'invalid-stream'; deviceId: string };

/** What a topic under devices/ means, or undefined for a topic outside devices/. */
export function parseDeviceTopic(topic: string): DeviceTopic | undefined {
  if (!topic.startsWith('devices/')) return undefined;
  const idEnd = topic.indexOf('/', 8);
  const deviceId = idEnd === -1 ? topic.slice(8) : topic.slice(8, idEnd);
  if (idEnd === -1) return { kind: 'device', deviceId };
  const rest = topic.slice(idEnd + 1);
  if (rest === 'telemetry') return { kind: 'telemetry', deviceId, stream: '' };
  if (rest.startsWith('command-results/') && rest.indexOf('/', 16) === -1 && rest.length > 16) {
    return { kind: 'command-result', deviceId, commandId: rest.slice(16) };
  }
  if (!rest.startsWith('telemetry/')) return { kind: 'device', deviceId };
  const stream = rest.slice(10);
  return stream !== '' && isValidStream(stream) ? { kind: 'telemetry', deviceId, stream } : { kind: 'invalid-stream', deviceId };
}

/** A stream name: "" (the default stream) or up to 128 printable characters in non-empty "/" levels. */
export function isValidStream(stream: string): boolean {
  if (stream === '') return true;
  return stream.length <= MAX_STREAM_LENGTH && isLabel(stream) && !stream.split('/').includes('');
}

/** True if a subscription filter stays inside devices/{deviceId}/ (no wildcard before that point). */
export function isOwnFilter(filter: string, deviceId: string): boolean {
  const own = `devices/${deviceId}`;
  return filter === own || filter.startsWith(`${own}/`);
}

/** Where the gateway publishes a command for an MQTT device. */
export function commandTopic(deviceId: string, name: string, commandId: string): string {
  return `devices/${deviceId}/commands/${name}/${commandId}`;
}

/** Where a device answers a command (MQTT 5: also the command's Response Topic). */
export function commandResultTopic(deviceId: string, commandId: string): string {
  return `devices/${deviceId}/command-results/${commandId}`;
}
