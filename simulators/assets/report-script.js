// The report page's own script, inlined by html.ts (plain browser JavaScript: it is not compiled). It draws the
// charts of the JSON in #report-data with uPlot, marks the faults (dashed red lines with their kind) and the
// phases (shaded bands named above the plot) on every chart, keeps each chart as wide as its card, and tells
// a test how it went: body[data-charts] = the number of charts drawn, body[data-error] = the first error.
// It runs before uPlot's script in the page, so that its error hooks see a failure there too.
(function () {
  'use strict';

  const body = document.body;

  function fail(message) {
    if (!body.dataset.error) body.dataset.error = String(message || 'script error');
  }

  window.addEventListener('error', (event) => fail(event.message));
  window.addEventListener('unhandledrejection', (event) =>
    fail(event.reason && event.reason.message ? event.reason.message : event.reason),
  );
  // The CSP forbids every request: an attempt is a bug in the report, so it is reported like an error.
  document.addEventListener('securitypolicyviolation', (event) =>
    fail(`blocked by the page's CSP: ${event.violatedDirective} ${event.blockedURI}`),
  );

  document.addEventListener('DOMContentLoaded', () => {
    try {
      main();
    } catch (err) {
      fail(err && err.message ? err.message : err);
    }
  });

  /** Every other phase shaded; each starts with a thin line, so that neighbours stay apart. */
  const PHASE_FILLS = ['rgba(31, 119, 180, 0.07)', 'rgba(0, 0, 0, 0)'];
  const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
  /** Room above the plot for the phase names. */
  const TOP_STRIP = 22;

  function main() {
    const data = JSON.parse(document.getElementById('report-data').textContent);
    const charts = [];
    for (const spec of data.charts) {
      const el = document.getElementById(`chart-${spec.id}`);
      const chart = { el, width: el.clientWidth, drawn: false, plot: null };
      // A log scale has no place for 0: such values are left out (a gap) rather than drawn at the bottom.
      const columns = [
        spec.x,
        ...spec.series.map((s) => (spec.log ? s.values.map((v) => (v !== null && v > 0 ? v : null)) : s.values)),
      ];
      chart.plot = new uPlot(options(spec, data, chart), columns, el);
      charts.push(chart);
    }

    // Follow the card's width (window resize, phone rotation); the height follows the width within bounds.
    const observer = new ResizeObserver(() => {
      for (const chart of charts) {
        const width = chart.el.clientWidth;
        if (width > 0 && width !== chart.width) {
          chart.width = width;
          chart.plot.setSize(size(width));
        }
      }
    });
    for (const chart of charts) observer.observe(chart.el);

    // uPlot draws in a microtask after construction; a frame later every chart that could draw has.
    requestAnimationFrame(() =>
      setTimeout(() => {
        body.dataset.charts = String(charts.filter((c) => c.drawn).length);
      }, 0),
    );
  }

  function size(width) {
    return { width, height: Math.round(Math.min(320, Math.max(200, width * 0.42))) };
  }

  function options(spec, data, chart) {
    return {
      ...size(chart.width),
      padding: [TOP_STRIP, 18, 0, 0],
      cursor: { sync: { key: 'fleetgate-report' }, drag: { x: false, y: false } },
      scales: {
        x: { time: false, range: () => [0, data.xMax] },
        // Linear from 0, with room at the top for the fault labels; log (whole powers of ten) for latency,
        // where a p50 of 10 ms and a max of 4 s after a fault both have to stay readable.
        y: spec.log
          ? {
              distr: 3,
              log: 10,
              range: (_u, min, max) =>
                min == null || max == null ? [1, 1000] : uPlot.rangeLog(Math.max(min, 0.1), max, 10, true),
            }
          : { range: (_u, _min, max) => [0, max != null && max > 0 ? max * 1.2 : 1] },
      },
      axes: [
        { label: 'seconds since start', labelSize: 20, labelFont: `12px ${FONT}`, font: `11px ${FONT}`, size: 34 },
        {
          font: `11px ${FONT}`,
          size: 52,
          values: (_u, splits) => splits.map(compact),
          // On a log scale uPlot would draw a grid line at every 1..9 of each power of ten: keep the powers.
          ...(spec.log ? { splits: (_u, _axis, min, max) => powersOfTen(min, max) } : {}),
        },
      ],
      series: [
        { label: 'time', value: (_u, v) => (v == null ? '–' : `${v.toFixed(1)} s`) },
        ...spec.series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          spanGaps: false,
          points: { show: false },
          value: (_u, v) => (v == null ? '–' : `${readable(v)} ${spec.unit}`),
        })),
      ],
      plugins: [markers(data, chart)],
    };
  }

  /** Phases as shaded bands under everything, faults as dashed lines over everything, both named. */
  function markers(data, chart) {
    return {
      hooks: {
        drawClear: [(u) => drawPhases(u, data.phases)],
        draw: [
          (u) => {
            const labels = drawFaults(u, data.faults, data.faultColor);
            // What was drawn on the canvas, for a test (canvas text is not in the DOM).
            u.root.dataset.faultLabels = labels.join('|');
            chart.drawn = true;
          },
        ],
      },
    };
  }

  function drawPhases(u, phases) {
    const { ctx, bbox } = u;
    const px = uPlot.pxRatio;
    ctx.save();
    ctx.font = `${11 * px}px ${FONT}`;
    // uPlot leaves its own alignment on the context (right-aligned y ticks): set ours every time.
    ctx.textAlign = 'left';
    ctx.textBaseline = 'bottom';
    phases.forEach((phase, i) => {
      const left = Math.max(bbox.left, u.valToPos(phase.from, 'x', true));
      const right = Math.min(bbox.left + bbox.width, u.valToPos(phase.to, 'x', true));
      if (right <= left) return;
      ctx.fillStyle = PHASE_FILLS[i % PHASE_FILLS.length];
      ctx.fillRect(left, bbox.top, right - left, bbox.height);
      if (i > 0) {
        ctx.fillStyle = 'rgba(91, 100, 114, 0.45)';
        ctx.fillRect(Math.round(left), bbox.top, px, bbox.height);
      }
      ctx.fillStyle = '#5b6472';
      ctx.fillText(fit(ctx, phase.name, right - left - 6 * px), left + 3 * px, bbox.top - 4 * px);
    });
    ctx.restore();
  }

  function drawFaults(u, faults, color) {
    const { ctx, bbox } = u;
    const px = uPlot.pxRatio;
    const drawn = [];
    const rowEnds = [];
    const rowHeight = 17 * px;
    ctx.save();
    ctx.beginPath();
    ctx.rect(bbox.left, bbox.top, bbox.width, bbox.height);
    ctx.clip();
    ctx.font = `600 ${11 * px}px ${FONT}`;
    ctx.textAlign = 'left';
    ctx.textBaseline = 'middle';
    for (const fault of faults) {
      const x = Math.round(u.valToPos(fault.t, 'x', true));
      if (x < bbox.left || x > bbox.left + bbox.width) continue;
      ctx.strokeStyle = color;
      ctx.lineWidth = 2 * px;
      ctx.setLineDash([6 * px, 4 * px]);
      ctx.beginPath();
      ctx.moveTo(x, bbox.top);
      ctx.lineTo(x, bbox.top + bbox.height);
      ctx.stroke();

      // The label beside the line, on the first row where it does not overlap an earlier one; to the left of
      // the line when it would leave the plot on the right.
      const width = ctx.measureText(fault.kind).width + 8 * px;
      let left = x + 3 * px;
      if (left + width > bbox.left + bbox.width) left = x - 3 * px - width;
      let row = rowEnds.findIndex((end) => left > end + 4 * px);
      if (row === -1) row = rowEnds.length;
      rowEnds[row] = left + width;
      const y = bbox.top + 4 * px + row * rowHeight;
      // A white halo rather than a box, so the series behind the label stay visible around its letters.
      ctx.setLineDash([]);
      ctx.lineJoin = 'round';
      ctx.lineWidth = 3 * px;
      ctx.strokeStyle = 'rgba(255, 255, 255, 0.95)';
      ctx.strokeText(fault.kind, left + 4 * px, y + (rowHeight - 3 * px) / 2);
      ctx.fillStyle = color;
      ctx.fillText(fault.kind, left + 4 * px, y + (rowHeight - 3 * px) / 2);
      drawn.push(fault.kind);
    }
    ctx.restore();
    return drawn;
  }

  function fit(ctx, text, maxWidth) {
    if (ctx.measureText(text).width <= maxWidth) return text;
    let cut = text;
    while (cut.length > 1 && ctx.measureText(`${cut}…`).width > maxWidth) cut = cut.slice(0, -1);
    return cut.length > 1 ? `${cut}…` : '';
  }

  function powersOfTen(min, max) {
    const out = [];
    for (let p = Math.floor(Math.log10(min)); 10 ** p <= max * 1.0001; p++) if (10 ** p >= min * 0.9999) out.push(10 ** p);
    return out;
  }

  /** Axis ticks: 1.5k, 12k, 2M (null: a tick the axis hides, on a log scale). */
  function compact(v) {
    if (v == null) return null;
    const a = Math.abs(v);
    if (a >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
    if (a >= 1e4) return `${+(v / 1e3).toFixed(0)}k`;
    if (a >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
    return String(+v.toFixed(2));
  }

  /** Legend values: whole numbers grouped, small ones with two significant decimals. */
  function readable(v) {
    return Math.abs(v) >= 100 ? Math.round(v).toLocaleString('en-US') : String(+v.toFixed(2));
  }
})();
