/** For self-contained HTML pages (the gateway's status page, the simulator's report): inline code and its CSP. */
import { createHash } from 'node:crypto';

/** Text to put inside an inline <script> or <style>: a closing tag in it would end the element early. */
export function inlineText(text: string, element: 'script' | 'style'): string {
  return text.replace(new RegExp(`</(${element})`, 'gi'), '<\\/$1');
}

/** The Content-Security-Policy source that lets exactly this inline script run: 'sha256-...'. */
export function cspHash(inlined: string): string {
  return `'sha256-${createHash('sha256').update(inlined).digest('base64')}'`;
}
