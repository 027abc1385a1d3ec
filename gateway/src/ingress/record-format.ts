/**
 * What MQTT 5 PUBLISH properties say about a payload, for its journal record (TelemetryRecord.content_type):
 * the Content Type (3.3.2.3.9) is the record's content_type; without one, a Payload Format Indicator of 1 (UTF-8,
 * 3.3.2.3.2) makes it "text/plain; charset=utf-8". Checked before journaling: a payload the indicator calls UTF-8
 * must be [MQTT-3.3.2-4] (else PUBACK 0x99, payload-format-invalid), and a content type must be a label (at most
 * 128 characters, no control character: core isLabel), as the backend checks it again.
 */
import { isUtf8 } from 'node:buffer';
import type { PublishPacket } from 'aedes';
import { isLabel } from '@fleetgate/core';

const UTF8_TEXT = 'text/plain; charset=utf-8';

/** False when the properties contradict the payload, or the content type cannot be a record's. */
export function formatHolds(packet: PublishPacket, payload: Buffer): boolean {
  const properties = packet.properties;
  if (!properties) return true;
  if (isUtf8Indicated(properties.payloadFormatIndicator) && !isUtf8(payload)) return false;
  return properties.contentType === undefined || isLabel(properties.contentType);
}

/** The record's content type: the PUBLISH's Content Type, or UTF-8 text when only the indicator says so. */
export function contentTypeOf(packet: PublishPacket): string {
  const properties = packet.properties;
  if (!properties) return '';
  return properties.contentType ?? (isUtf8Indicated(properties.payloadFormatIndicator) ? UTF8_TEXT : '');
}

/** mqtt-packet decodes the indicator byte as a boolean; 1 is UTF-8. */
function isUtf8Indicated(indicator: boolean | number | undefined): boolean {
  return indicator === true || indicator === 1;
}
