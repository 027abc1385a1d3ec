// @ts-check
/**
 * How fleetgate writes numbers for people: counts, rates, bytes, durations, ages. One module for the terminal
 * (`fleetgate status`, which imports it) and for the browser (the gateway's status page inlines this very file
 * before its own script, gateway/src/admin/status-page.ts), so that both print the same string for the same
 * value (test/gateway/status-page.test.ts checks it in Chromium).
 *
 * That is why it is plain JavaScript, typed with JSDoc (tsc checks it and writes its .d.ts): a page cannot load
 * TypeScript, and this file must mean the same thing run from the sources as built. It imports nothing and
 * touches nothing but its arguments. Units are decimal, as the size flags read them (2GB = 2e9 bytes).
 */

/** What an unknown value (not reported, not a number) reads as. */
export const UNKNOWN = '—';

/**
 * @param {unknown} n
 * @returns {n is number}
 */
function isNumber(n) {
  return typeof n === 'number' && Number.isFinite(n);
}

/**
 * A count, rounded, with thousands separators: 4321 -> "4,321".
 * @param {number | null | undefined} n
 * @returns {string}
 */
export function int(n) {
  return isNumber(n) ? Math.round(n).toLocaleString('en-US') : UNKNOWN;
}

/**
 * Something per second: "0", one decimal below 100 ("12.5"), a whole count from 100 on ("1,234").
 * @param {number | null | undefined} n
 * @returns {string}
 */
export function rate(n) {
  if (!isNumber(n)) return UNKNOWN;
  if (n === 0) return '0';
  return n >= 100 ? int(n) : n.toFixed(1);
}

/**
 * Bytes in decimal units: "999 B", "1.3 MB", "120 GB" (three digits at most, one decimal below 100).
 * @param {number | null | undefined} n
 * @returns {string}
 */
export function bytes(n) {
  if (!isNumber(n)) return UNKNOWN;
  if (Math.abs(n) < 1000) return `${Math.round(n)} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = -1;
  while (Math.abs(v) >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

/**
 * Bytes per second: "12.0 kB/s".
 * @param {number | null | undefined} n
 * @returns {string}
 */
export function byteRate(n) {
  return `${bytes(n)}/s`;
}

/**
 * A duration in its two largest units: "350 ms", "42 s", "1 min 35 s", "3 h 12 min", "2 d 7 h" (hours up to 48).
 * @param {number | null | undefined} ms
 * @returns {string}
 */
export function duration(ms) {
  if (!isNumber(ms)) return UNKNOWN;
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/**
 * The age of the oldest of something: null means there is none ("none"); a duration otherwise.
 * @param {number | null | undefined} ms
 * @returns {string}
 */
export function age(ms) {
  return ms === null ? 'none' : duration(ms);
}
