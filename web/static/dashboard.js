// The directive dashboard's charts (uPlot, vendored): counts per status bucket per province as
// stacked bars, and the on-time rate month by month as a line. Numbers in the page's language
// (vi: 3.355 and 99,66 %). Drawn from the JSON the page embeds, then redrawn from every fresh
// read of /api/directives/dashboard (a websocket snapshot carries counts only: the line stays).
import { locale, t } from "/static/i18n.js";
import uPlot from "/static/vendor/uplot-1.6.32/uPlot.esm.js";

const vnInt = new Intl.NumberFormat(locale, { maximumFractionDigits: 0 });
const vnPct = new Intl.NumberFormat(locale, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
export const formatInt = (n) => vnInt.format(n);
export const formatPct = (p) => (p === null || p === undefined ? "—" : `${vnPct.format(p)} %`);

// Bottom of the stack first: what is done on time carries the rest.
const STACK = ["done_on_time", "done_late", "open_within", "open_overdue"];
const COLOUR = { open_overdue: "#b42318", open_within: "#1d4f91", done_late: "#b26a00", done_on_time: "#1f7a3a" };
const SHORT = /^(Tỉnh|Thành phố|Thủ đô)\s+/u;

export function onTimeRate(counts) {
  const done = counts.done_on_time + counts.done_late;
  return done ? (100 * counts.done_on_time) / done : null;
}

function width(el) {
  return Math.max(320, Math.floor(el.clientWidth || el.parentElement?.clientWidth || 640));
}

function bucketChart(el, rows) {
  const names = rows.map((r) => r.unit.name.replace(SHORT, ""));
  const xs = rows.map((_, i) => i);
  const raw = STACK.map((b) => rows.map((r) => r.counts[b]));
  // uPlot has no stacking of its own: each series is drawn as the sum up to it, the tallest first.
  const cumulative = STACK.map((_, k) => rows.map((_, i) => raw.slice(0, k + 1).reduce((s, col) => s + col[i], 0)));
  const order = STACK.map((_, k) => STACK.length - 1 - k);
  const bars = uPlot.paths.bars({ size: [0.7, 48], align: 0 });
  const opts = {
    width: width(el), height: 320, legend: { show: true }, select: { show: false },
    cursor: { drag: { x: false, y: false }, points: { show: false } },
    scales: { x: { time: false, range: (u, lo, hi) => [lo - 0.5, hi + 0.5] }, y: { range: (u, lo, hi) => [0, Math.max(1, hi)] } },
    axes: [
      { splits: () => xs, values: (u, splits) => splits.map((i) => names[i] ?? ""), rotate: rows.length > 8 ? -60 : 0,
        size: rows.length > 8 ? 110 : 40, font: "11px system-ui", gap: 4 },
      { values: (u, splits) => splits.map((v) => (Number.isInteger(v) ? formatInt(v) : "")), size: 56 },
    ],
    series: [
      { label: t("js.directives.chart.unit"), value: (u, i) => (i === null || i === undefined ? "" : rows[i]?.unit.name ?? "") },
      ...order.map((k) => ({
        label: t(`js.directives.bucket.${STACK[k]}`), fill: COLOUR[STACK[k]], stroke: COLOUR[STACK[k]], width: 0,
        paths: bars, points: { show: false },
        value: (u, v, si, i) => (i === null || i === undefined ? "" : formatInt(raw[k][i])),
      })),
    ],
  };
  return new uPlot(opts, [xs, ...order.map((k) => cumulative[k])], el);
}

function trendChart(el, trend) {
  const xs = trend.map((_, i) => i);
  const opts = {
    width: width(el), height: 240, select: { show: false }, cursor: { drag: { x: false, y: false } },
    scales: { x: { time: false, range: (u, lo, hi) => [lo - 0.5, hi + 0.5] }, y: { range: [0, 100] } },
    axes: [
      { splits: () => xs, values: (u, splits) => splits.map((i) => trend[i]?.label ?? ""), size: 40 },
      { values: (u, splits) => splits.map((v) => `${formatInt(v)} %`), size: 56 },
    ],
    series: [
      { label: t("js.directives.chart.month"), value: (u, i) => (i === null || i === undefined ? "" : trend[i]?.label ?? "") },
      { label: t("js.directives.chart.rate"), stroke: "#1f7a3a", width: 2, points: { show: true, size: 7 },
        value: (u, v, si, i) => (i === null || i === undefined ? "" : formatPct(trend[i]?.rate)) },
    ],
  };
  return new uPlot(opts, [xs, trend.map((m) => m.rate)], el);
}

export function mountCharts(bucketsEl, trendEl, initial) {
  let plots = { buckets: null, trend: null };
  let trend = initial.trend || [];
  const draw = (rows) => {
    plots.buckets?.destroy();
    plots.trend?.destroy();
    bucketsEl.replaceChildren();
    plots.buckets = rows.length ? bucketChart(bucketsEl, rows) : null;
    plots.trend = null;
    if (trend.length) {
      trendEl.replaceChildren();
      plots.trend = trendChart(trendEl, trend);
    }
    bucketsEl.dataset.rows = String(rows.length);
    trendEl.dataset.months = String(trend.length);
  };
  draw(initial.rows);
  return {
    update(data) {
      if (Array.isArray(data.trend)) trend = data.trend;
      draw(data.rows);
    },
  };
}
