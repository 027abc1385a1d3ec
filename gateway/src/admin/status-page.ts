/**
 * The live status page at `/` on the gateway's admin port: devices online, rates in and out, the journal's
 * backlog, the data at risk, one card per upstream, commands and readiness, refreshed every 2 s from
 * GET /v1/stats (and GET /readyz). One self-contained page, readable on a phone.
 *
 * The page is static: everything it shows it fetches itself, so no value from the gateway is ever written into
 * markup here, and the script puts every string it receives in the page with textContent (an upstream called
 * `</script><img onerror=...>` shows as those characters). The Content-Security-Policy lets the page run its
 * own inline script only (by hash), fetch only from its own origin, and load nothing else.
 *
 * Its script and CSS are plain files in the package's assets/ folder (status-page-script.js, status-page.css),
 * read once; the build leaves them as they are (src/admin/ and dist/admin/ are both two levels below it). The
 * numbers are written by @fleetgate/core's units.js, the module `fleetgate status` imports: its file is inlined
 * as it is, before the page's script, the two as one module script (an inline module cannot import another), so
 * that the page and the terminal print the same strings and the page still loads nothing.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cspHash, inlineText } from '@fleetgate/common';

let page: string | undefined;

export function statusPageHtml(): string {
  page ??= render();
  return page;
}

function render(): string {
  const read = (name: string) => readFileSync(new URL(`../../assets/${name}`, import.meta.url), 'utf8');
  // Resolved as an import of it would be: core's src/units.js from the sources, its dist/units.js when installed.
  const units = readFileSync(createRequire(import.meta.url).resolve('@fleetgate/core/units'), 'utf8');
  const script = inlineText(`${units}\n${read('status-page-script.js')}`, 'script');
  const css = inlineText(read('status-page.css'), 'style');
  const csp = [
    "default-src 'none'",
    `script-src ${cspHash(script)}`,
    "style-src 'unsafe-inline'",
    "connect-src 'self'",
    // The icon is inline (data:), so the browser asks the gateway for no /favicon.ico.
    'img-src data:',
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="referrer" content="no-referrer">
<title>fleetgate · status</title>
<link rel="icon" href="${ICON}">
<style>${css}</style>
</head>
<body>
<header>
  <div class="who">
    <h1>fleetgate <span id="gw-id">…</span></h1>
    <div class="meta"><span id="gw-version"></span> · up <span id="gw-uptime">—</span></div>
  </div>
  <div class="badges">
    <span id="ready" class="pill off">readiness …</span>
    <span id="conn" data-state="connecting" role="status" aria-live="polite">connecting…</span>
  </div>
</header>
<main>
  <div class="grid">
    <div class="card" id="card-devices">
      <h3>Devices online</h3>
      <div class="big" id="dev-total">—</div>
      <dl><dt>MQTT</dt><dd id="dev-mqtt">—</dd><dt>SDK (gRPC)</dt><dd id="dev-sdk">—</dd></dl>
    </div>
    <div class="card" id="card-in">
      <h3>Messages in</h3>
      <div class="big" id="rate-in">—</div>
      <div class="sub">per second, MQTT and SDK</div>
      <dl><dt>since start</dt><dd id="total-in">—</dd></dl>
    </div>
    <div class="card" id="card-out">
      <h3>Records acked</h3>
      <div class="big" id="rate-out">—</div>
      <div class="sub">per second, by every upstream they go to</div>
      <dl><dt>journal</dt><dd id="rate-out-bytes">—</dd></dl>
    </div>
    <div class="card" id="card-journal">
      <h3>Journal backlog</h3>
      <div class="big" id="j-rows">—</div>
      <div class="sub">rows not yet acknowledged</div>
      <dl>
        <dt>payload</dt><dd id="j-bytes">—</dd>
        <dt>oldest</dt><dd id="j-oldest">—</dd>
        <dt>on disk</dt><dd id="j-file">—</dd>
        <dt>dropped</dt><dd id="j-dropped">—</dd>
      </dl>
      <p id="j-disk-full" class="risk-note bad" hidden>Disk full: new messages are refused until space returns.</p>
    </div>
    <div class="card" id="card-risk">
      <h3>Data at risk</h3>
      <div class="big" id="risk-bytes">—</div>
      <div class="sub">acknowledged to devices, held by no backend yet</div>
      <dl>
        <dt>rows</dt><dd id="risk-rows">—</dd>
        <dt>oldest</dt><dd id="risk-oldest">—</dd>
        <dt>in</dt><dd id="risk-in">—</dd>
        <dt>out</dt><dd id="risk-out">—</dd>
        <dt>limit</dt><dd id="risk-limit">—</dd>
        <dt>full in</dt><dd id="risk-full">—</dd>
      </dl>
      <p class="risk-note" id="risk-when"></p>
    </div>
  </div>
  <section>
    <h2>Upstreams</h2>
    <div class="grid wide" id="upstreams"><p class="note">Waiting for the gateway…</p></div>
  </section>
  <section class="grid wide">
    <div class="card" id="card-commands">
      <h3>Commands</h3>
      <div id="commands"><p class="note">—</p></div>
    </div>
    <div class="card" id="card-readiness">
      <h3>Readiness</h3>
      <p class="note" id="ready-note"></p>
      <ul id="checks"></ul>
    </div>
  </section>
</main>
<footer>Refreshes every 2 s from <a href="/v1/stats">/v1/stats</a> on this admin port. In a terminal: <code>fleetgate status</code>.</footer>
<noscript><p>This page needs JavaScript; <a href="/v1/stats">/v1/stats</a> has the same data as JSON.</p></noscript>
<script type="module">${script}</script>
</body>
</html>
`;
}

/** A small square in the page's green, as an inline SVG. */
const ICON =
  "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Crect width='16' height='16' rx='3' fill='%231a7f37'/%3E%3C/svg%3E";
