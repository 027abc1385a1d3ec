/**
 * Ids of devices and gateways: they become MQTT topic levels, log fields and SQL keys, so they keep to a safe
 * alphabet: 1 to 128 of [A-Za-z0-9._:-], starting with a letter or digit. The gateway checks device ids at
 * CONNECT; the backend checks them again, because a gateway may be compromised.
 */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/**
 * Device ids: what MQTT client ids allow, less what breaks downstream, decided from where a device id goes (README
 * "Client ids"): it is a topic level (devices/{id}/...), so no `/`, `+` or `#`; a log field and a line in exports,
 * so no control character (C0, DEL, C1); 1 to 128 characters. Spaces and any other Unicode are fine: NATS subjects
 * escape it (sink-jetstream.ts), SQLite and JSON carry it as is. Stock clients name themselves "clean retained".
 * Names of Object.prototype members are refused where devices connect (gateway device-auth.ts).
 */
export const DEVICE_ID_PATTERN = /^[^/+#\p{Cc}]{1,128}$/u;

/** Stream names and content types: up to 128 characters, none of them a control character. */
export function isLabel(value: string): boolean {
  return value === '' || (value.length <= 128 && !CONTROL.test(value));
}

// Finding control characters (C0, DEL, C1) is the point of this expression.
// oxlint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
