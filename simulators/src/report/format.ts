/**
 * Escaping and number formatting for the HTML report: every string from a result goes through `esc`. Counts are
 * written by @fleetgate/core/units (`int`), as `fleetgate status` and the gateway's status page write them; what only a
 * run report shows has its own here: latencies in ms with decimals (`ms`), a run's length to the tenth of a second
 * (`seconds`, `duration`), and dates.
 */

/** JSON safe inside <script type="application/json">: no `<` (so no `</script>` or `<!--`), `>` or `&`. */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** For text and for double- or single-quoted attribute values. */
export function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

export function ms(n: number): string {
  if (!Number.isFinite(n)) return '—';
  return n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : Math.round(n).toLocaleString('en-US');
}

export function seconds(t: number): string {
  return `${Number.isFinite(t) ? t.toFixed(1) : '?'} s`;
}

export function dateTime(msSinceEpoch: number): string {
  if (!Number.isFinite(msSinceEpoch)) return '?';
  return new Date(msSinceEpoch)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, ' UTC');
}

export function duration(totalS: number): string {
  if (!Number.isFinite(totalS)) return '?';
  if (totalS < 60) return `${totalS.toFixed(1)} s`;
  const whole = Math.round(totalS);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = whole % 60;
  return h > 0 ? `${h} h ${m} min ${s} s` : `${m} min ${s} s`;
}
