// The status page's own script, inlined by status-page.ts (plain browser JavaScript: it is not compiled).
// It runs in one module script after @fleetgate/core's units.js, which status-page.ts inlines before it: int, rate,
// bytes, byteRate, duration and age come from there, the functions `fleetgate status` writes its numbers with, so
// that the page and the terminal show the same value the same way.
// It polls GET /v1/stats (and GET /readyz, when the gateway serves it) every 2 s, or `?interval=MS`, and fills
// the page in. Rates come from two successive snapshots of the counters. Every string from the gateway lands
// in the page through textContent, never as markup: a device or upstream name, an error message, is text.
// A test reads how it went from the page: body[data-polls] = answers shown so far, #conn[data-state] =
// connecting | live | lost.
/* global int, rate, bytes, byteRate, duration, age */
(function () {
  'use strict';

  const params = new URLSearchParams(location.search);
  const INTERVAL_MS = Math.min(60_000, Math.max(250, Number(params.get('interval')) || 2000));
  /** A poll that takes longer than this counts as failed: a hung gateway looks hung. */
  const TIMEOUT_MS = Math.max(1500, Math.min(10_000, INTERVAL_MS * 2));

  const STATES = {
    ready: { label: 'ready', tone: 'ok' },
    connecting: { label: 'connecting', tone: 'warn' },
    idle: { label: 'idle', tone: 'warn' },
    transient_failure: { label: 'failing, retrying', tone: 'bad' },
    shutdown: { label: 'shut down', tone: 'off' },
  };
  const WHEN_FULL = {
    'drop-oldest': 'Then the oldest records are dropped, and the backend is told which (a gap).',
    'reject-new': 'Then new messages are refused until the backlog drains (devices keep them and resend).',
  };

  const $ = (id) => document.getElementById(id);
  const set = (id, text) => {
    const el = $(id);
    if (el) el.textContent = text;
  };
  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

  function sum(record) {
    if (!record || typeof record !== 'object') return 0;
    return Object.values(record).reduce((a, v) => a + (isNum(v) ? v : 0), 0);
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  /** A <dl> of [term, value] pairs. */
  function list(pairs) {
    const dl = el('dl');
    for (const [term, value] of pairs) {
      dl.append(el('dt', '', term), el('dd', '', value));
    }
    return dl;
  }

  // ---- counters -> rates ---------------------------------------------------------------------------------

  /** The counters rates are made of; a counter that went down means the gateway restarted. */
  function counters(stats) {
    const j = stats.journal || {};
    const upstreams = {};
    for (const u of Array.isArray(stats.upstreams) ? stats.upstreams : []) {
      if (u && typeof u.name === 'string') upstreams[u.name] = isNum(u.recordsSent) ? u.recordsSent : 0;
    }
    return {
      at: performance.now(),
      uptime: isNum(stats.uptimeSeconds) ? stats.uptimeSeconds : 0,
      messagesIn:
        (stats.ingress && isNum(stats.ingress.messages) ? stats.ingress.messages : 0) +
        (stats.deviceLink && isNum(stats.deviceLink.messages) ? stats.deviceLink.messages : 0),
      // Rows freed because every upstream acknowledged them: appended, minus what is still held, minus drops.
      delivered: isNum(j.committedRows) && isNum(j.rows) ? j.committedRows - j.rows - sum(j.dropped) : null,
      upstreams,
    };
  }

  function perSecond(now, before, key) {
    if (!before || now[key] === null || before[key] === null) return null;
    const seconds = (now.at - before.at) / 1000;
    const delta = now[key] - before[key];
    return seconds > 0 && delta >= 0 ? delta / seconds : null;
  }

  // ---- rendering -----------------------------------------------------------------------------------------

  function render(stats, rates, readiness) {
    set('gw-id', stats.gatewayId || '?');
    set('gw-version', stats.version ? 'v' + stats.version : '');
    set('gw-uptime', isNum(stats.uptimeSeconds) ? duration(stats.uptimeSeconds * 1000) : '—');
    document.title = 'fleetgate ' + (stats.gatewayId || '') + ' · status';

    const mqtt = stats.ingress && isNum(stats.ingress.devicesConnected) ? stats.ingress.devicesConnected : stats.devicesConnected;
    const sdk = stats.deviceLink ? stats.deviceLink.devicesConnected : null;
    set('dev-total', int((isNum(mqtt) ? mqtt : 0) + (isNum(sdk) ? sdk : 0)));
    set('dev-mqtt', int(mqtt));
    set('dev-sdk', stats.deviceLink ? int(sdk) : 'off');

    set('rate-in', rate(rates.messagesIn));
    set('total-in', int(counters(stats).messagesIn));
    set('rate-out', rate(rates.delivered));
    const risk = stats.dataAtRisk;
    set('rate-out-bytes', risk ? byteRate(risk.outBytesPerSecond) + ' freed' : '—');

    const j = stats.journal || {};
    set('j-rows', int(j.rows));
    set('j-bytes', bytes(j.payloadBytes));
    set('j-oldest', age(j.oldestUnackedAgeMs));
    set('j-file', bytes(j.fileBytes));
    set('j-dropped', int(sum(j.dropped)));
    $('j-disk-full').hidden = !j.diskFull;

    renderRisk(risk);
    renderUpstreams(stats.upstreams, rates.upstreams);
    renderCommands(stats.commands);
    if (readiness !== undefined) renderReadiness(readiness);
  }

  function renderRisk(risk) {
    const card = $('card-risk');
    if (!risk) {
      set('risk-bytes', '—');
      for (const id of ['risk-rows', 'risk-oldest', 'risk-in', 'risk-out', 'risk-limit', 'risk-full']) set(id, '—');
      set('risk-when', 'This gateway does not report its data at risk.');
      card.className = 'card';
      return;
    }
    set('risk-bytes', bytes(risk.unackedBytes));
    set('risk-rows', int(risk.unackedRows));
    set('risk-oldest', age(risk.oldestUnackedAgeMs));
    set('risk-in', byteRate(risk.inBytesPerSecond));
    set('risk-out', byteRate(risk.outBytesPerSecond));
    set('risk-limit', risk.limitBytes === null ? 'no limit' : bytes(risk.limitBytes));
    let full = 'not growing';
    if (risk.limitBytes === null) full = 'no limit set';
    else if (isNum(risk.secondsUntilFull))
      full = risk.secondsUntilFull <= 0 ? 'full now' : duration(risk.secondsUntilFull * 1000);
    set('risk-full', full);
    const when = WHEN_FULL[risk.whenFull] || '';
    set(
      'risk-when',
      risk.limitBytes === null
        ? 'No journal limit (--journal-max-bytes): it grows until the disk is full, then new messages are refused.'
        : 'At the limit (' + risk.whenFull + '): ' + when,
    );
    const soon = isNum(risk.secondsUntilFull) && risk.secondsUntilFull < 3600;
    card.className = 'card' + (soon ? ' alert-bad' : risk.unackedRows > 0 ? ' alert-warn' : '');
  }

  function renderUpstreams(upstreams, rates) {
    const box = $('upstreams');
    if (!Array.isArray(upstreams)) {
      box.replaceChildren(el('p', 'note', 'This gateway does not report its upstreams.'));
      return;
    }
    if (upstreams.length === 0) {
      box.replaceChildren(el('p', 'note', 'No upstream configured.'));
      return;
    }
    box.replaceChildren(
      ...upstreams.map((u) => {
        const state = STATES[u.state] || { label: String(u.state || 'unknown'), tone: 'off' };
        const card = el('article', 'card upstream tone-' + state.tone);
        card.dataset.state = String(u.state || 'unknown');
        const head = el('div', 'upstream-head');
        head.append(el('span', 'upstream-name', u.name), el('span', 'pill upstream-state ' + state.tone, state.label));
        card.append(head);
        card.append(
          list([
            ['connected to', u.connectedTo || u.target || '—'],
            ['pending', int(u.pendingRows) + ' rows, ' + bytes(u.pendingBytes)],
            ['oldest pending', age(u.oldestPendingAgeMs)],
            ['batches in flight', int(u.batchesInFlight)],
            ['sent', rate(rates[u.name]) + ' records/s'],
            ['acks, resent', int(u.acks) + ', ' + int(u.recordsResent)],
          ]),
        );
        if (u.lastError) card.append(el('p', 'error upstream-error', u.lastError));
        return card;
      }),
    );
  }

  function renderCommands(commands) {
    if (!commands) {
      $('commands').replaceChildren(el('p', 'note', 'Not reported.'));
      return;
    }
    const keys = ['received', 'delivered', 'succeeded', 'failed', 'expired', 'rejected', 'unknownResults', 'stored'];
    const labels = { unknownResults: 'results for unknown commands', stored: 'stored, not finished' };
    $('commands').replaceChildren(list(keys.filter((k) => k in commands).map((k) => [labels[k] || k, int(commands[k])])));
  }

  /** readiness: null while unknown (no /readyz), else { ready, status, checks: [[name, ok, detail]] }. */
  function renderReadiness(readiness) {
    const pill = $('ready');
    const checks = $('checks');
    if (!readiness) {
      pill.textContent = 'readiness not reported';
      pill.className = 'pill off';
      checks.replaceChildren();
      set('ready-note', 'This gateway does not serve /readyz.');
      return;
    }
    // degraded: ready (the journal takes data) while some upstream is down.
    const degraded = readiness.ready && readiness.status === 'degraded';
    pill.textContent = degraded ? 'ready, degraded' : readiness.ready ? 'ready' : 'not ready';
    pill.className = 'pill ' + (degraded ? 'warn' : readiness.ready ? 'ok' : 'bad');
    set('ready-note', readiness.status ? 'status: ' + readiness.status : '');
    checks.replaceChildren(
      ...readiness.checks.map(([name, ok, detail]) => {
        const li = el('li', ok ? 'ok' : 'bad', (ok ? '✓ ' : '✗ ') + name + (detail ? ': ' + detail : ''));
        return li;
      }),
    );
  }

  /**
   * /readyz's body, whatever shape its checks take: {name: bool | "ok" | {ok|status, reason|detail|message|error}}
   * or a list; the gateway's `upstreams` map (which makes it degraded, not unready) is listed too.
   */
  function readReadiness(httpStatus, body) {
    const okWord = (v) => v === true || (typeof v === 'string' && /^(ok|pass|passed|ready|up|healthy)$/i.test(v));
    const checks = [];
    const add = (name, v) => {
      if (v && typeof v === 'object') {
        const ok = 'ok' in v ? v.ok === true : okWord(v.status);
        const detail = v.reason || v.detail || v.message || v.error || (typeof v.status === 'string' && !ok ? v.status : '');
        checks.push([String(v.name || name), ok, detail ? String(detail) : '']);
      } else {
        checks.push([String(name), okWord(v), typeof v === 'string' && !okWord(v) ? v : '']);
      }
    };
    const raw = body && typeof body === 'object' ? body.checks : undefined;
    if (Array.isArray(raw)) raw.forEach((c, i) => add(String(i + 1), c));
    else if (raw && typeof raw === 'object') for (const [name, v] of Object.entries(raw)) add(name, v);
    const upstreams = body && typeof body === 'object' ? body.upstreams : undefined;
    if (upstreams && typeof upstreams === 'object' && !Array.isArray(upstreams)) {
      for (const [name, v] of Object.entries(upstreams)) add('upstream ' + name, v);
    }
    return { ready: httpStatus === 200, status: body && typeof body.status === 'string' ? body.status : '', checks };
  }

  // ---- polling -------------------------------------------------------------------------------------------

  let previous = null;
  let lastOkAt = 0;
  let lostReason = '';
  let readyzServed = true;
  let polls = 0;

  async function getJson(path) {
    const response = await fetch(path, {
      cache: 'no-store',
      signal: AbortSignal.timeout(TIMEOUT_MS),
      headers: { accept: 'application/json' },
    });
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    return { status: response.status, body };
  }

  async function poll() {
    try {
      const [stats, ready] = await Promise.all([
        getJson('/v1/stats'),
        readyzServed ? getJson('/readyz').catch(() => null) : null,
      ]);
      if (stats.status !== 200 || !stats.body || typeof stats.body !== 'object') {
        throw new Error('/v1/stats answered ' + stats.status + (stats.body && stats.body.error ? ': ' + stats.body.error : ''));
      }
      // A gateway without /readyz answers 404: stop asking (until the page is reloaded).
      if (ready && ready.status === 404) readyzServed = false;
      // null: not served; undefined: no answer this time (the last one stays shown).
      const readiness = !readyzServed ? null : ready ? readReadiness(ready.status, ready.body) : undefined;
      const now = counters(stats.body);
      const restarted = previous && now.uptime < previous.uptime;
      const before = restarted ? null : previous;
      const upstreamRates = {};
      for (const name of Object.keys(now.upstreams)) {
        if (before && name in before.upstreams) {
          const seconds = (now.at - before.at) / 1000;
          const delta = now.upstreams[name] - before.upstreams[name];
          upstreamRates[name] = seconds > 0 && delta >= 0 ? delta / seconds : null;
        }
      }
      render(
        stats.body,
        {
          messagesIn: perSecond(now, before, 'messagesIn'),
          delivered: perSecond(now, before, 'delivered'),
          upstreams: upstreamRates,
        },
        readiness,
      );
      previous = now;
      lastOkAt = Date.now();
      lostReason = '';
      polls++;
      document.body.dataset.polls = String(polls);
    } catch (err) {
      lostReason =
        err && err.name === 'TimeoutError'
          ? 'no answer in ' + TIMEOUT_MS / 1000 + ' s'
          : err && err.message
            ? err.message
            : String(err);
      // The counters between two answers around an outage would make one odd rate: start over.
      previous = null;
    }
    showConnection();
    setTimeout(poll, INTERVAL_MS);
  }

  function showConnection() {
    const conn = $('conn');
    const since = lastOkAt ? duration(Date.now() - lastOkAt) : '';
    if (lostReason) {
      conn.dataset.state = 'lost';
      conn.textContent = 'connection lost (' + lostReason + ')' + (since ? ', data from ' + since + ' ago' : '');
      document.body.classList.add('stale');
    } else if (lastOkAt) {
      conn.dataset.state = 'live';
      conn.textContent = 'live · updated ' + new Date(lastOkAt).toLocaleTimeString();
      document.body.classList.remove('stale');
    }
  }

  setInterval(showConnection, 1000);
  void poll();
})();
