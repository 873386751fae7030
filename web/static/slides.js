// A unit's live KPI slide: indicators (value, target, colour, rank among siblings) and, for the
// ministry, its child units ranked on the on-time rate. Kept current over the websocket topic
// kpi:<unit code> (snapshot on subscribe, then one whole-slide event per change).
import { locale, t } from "/static/i18n.js";
import { Live } from "/static/live.js";
import uPlot from "/static/vendor/uplot-1.6.32/uPlot.esm.js";

const COLOURS = ["green", "amber", "red", "none"];
const vnInt = new Intl.NumberFormat(locale, { maximumFractionDigits: 0 });
const vnPct = new Intl.NumberFormat(locale, { minimumFractionDigits: 2, maximumFractionDigits: 2 });

const pct = (p) => (p === null || p === undefined ? "—" : `${vnPct.format(p)} %`);

function valueText(ind) {
  if (!ind.has_data) return "—";
  if (ind.kind === "ratio") return `${pct(ind.percent)} (${vnInt.format(ind.num)}/${vnInt.format(ind.den)})`;
  return `${vnInt.format(ind.num)} ${ind.unit}`;
}

function targetText(ind) {
  if (ind.target === null || ind.target === undefined) return "—";
  if (ind.kind === "ratio") return pct(ind.target * 100);
  return `${ind.direction === "lower" ? "≤ " : ""}${vnInt.format(ind.target)} ${ind.unit}`;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

const signed = (x, fmt) => `${x > 0 ? "+" : x < 0 ? "−" : "±"}${fmt.format(Math.abs(x))}`;

// Change since the unit's previous (concluded) meeting: percentage points for ratios.
function changeCell(ind) {
  const c = ind.change;
  if (!c || c.delta === null || c.delta === undefined) return el("td", { class: "num muted", "data-field": "change" }, "—");
  const text = c.points ? t("js.kpi.points", { delta: signed(c.delta, vnPct) }) : signed(c.delta, vnInt);
  const cls = c.better === null ? "" : c.better ? "change-better" : "change-worse";
  const td = el("td", { class: `num ${cls}`, "data-field": "change",
    title: t("js.kpi.compared", { meeting: c.meeting, date: c.date, value: c.points ? pct(c.previous) : vnInt.format(c.previous) }) }, text);
  return td;
}

// A sparkline of the last months (uPlot, vendored): x = month index, y = the shown value.
const charts = new WeakMap();
function trendCell(ind) {
  const td = el("td", { class: "trend", "data-field": "trend" });
  const pts = ind.trend || [];
  if (pts.filter((p) => p.value !== null).length < 2) { td.append(el("span", { class: "muted" }, "—")); return td; }
  td.setAttribute("title", pts.map((p) => `${p.period}: ${ind.kind === "ratio" ? pct(p.value) : vnInt.format(p.value)}`).join("\n"));
  td.setAttribute("aria-label", t("js.kpi.trend_label", { n: pts.length }));
  const xs = pts.map((_, i) => i);
  const ys = pts.map((p) => p.value);
  const stroke = { green: "#1f7a3a", amber: "#b26a00", red: "#b42318" }[ind.colour] || "#1d4f91";
  const opts = {
    width: 120, height: 34, pxAlign: false, legend: { show: false }, cursor: { show: false },
    select: { show: false }, axes: [{ show: false }, { show: false }],
    scales: { x: { time: false } },
    series: [{}, { stroke, width: 1.5, points: { show: false } }],
  };
  const plot = new uPlot(opts, [xs, ys], td);
  charts.set(td, plot);
  return td;
}

// "none" means no data — or, for indicators without thresholds (plain counts), nothing to judge.
const badge = (colour, hasData = false) => el("span", { class: `badge kpi-${colour}`, "data-colour": colour },
  colour === "none" && hasData ? t("js.kpi.colour.watch") : COLOURS.includes(colour) ? t(`js.kpi.colour.${colour}`) : colour);

export function render(root, data) {
  const rows = data.indicators.map((ind) => el("tr", { "data-code": ind.code },
    el("th", { scope: "row" }, ind.name),
    el("td", { class: "num", "data-field": "value" }, valueText(ind)),
    el("td", { class: "num" }, targetText(ind)),
    el("td", {}, badge(ind.colour, ind.has_data)),
    el("td", { class: "num", "data-field": "rank" }, ind.has_data ? `${ind.rank}/${ind.siblings}` : "—"),
    changeCell(ind), trendCell(ind)));
  const table = el("table", { class: "kpi-slide" },
    el("thead", {}, el("tr", {}, el("th", {}, t("js.kpi.col.indicator")), el("th", {}, t("js.kpi.col.value")), el("th", {}, t("js.kpi.col.target")),
      el("th", {}, t("js.kpi.col.rating")), el("th", {}, t("js.kpi.col.rank")),
      el("th", {}, t("js.kpi.col.change")),
      el("th", {}, t("js.kpi.col.trend")))),
    el("tbody", {}, ...rows));
  const parts = [table];
  parts.push(el("p", { class: "muted", id: "slide-previous" }, data.previous
    ? t("js.kpi.previous", { meeting: data.previous.meeting, date: data.previous.date })
    : t("js.kpi.no_previous")));
  if (data.children) {
    const kids = data.children.rows.map((r) => el("tr", { "data-code": r.code, class: r.colour === "red" ? "laggard" : "" },
      el("td", { class: "num" }, String(r.rank)), el("th", { scope: "row" }, r.name),
      el("td", { class: "num" }, pct(r.percent)), el("td", {}, badge(r.colour, r.percent != null))));
    parts.push(el("h2", {}, t("js.kpi.ranking", { name: data.children.name })),
      el("table", { class: "kpi-ranking" },
        el("thead", {}, el("tr", {}, el("th", {}, t("js.kpi.col.place")), el("th", {}, t("js.kpi.col.unit")), el("th", {}, t("js.kpi.col.rate")),
          el("th", {}, t("js.kpi.col.rating")))),
        el("tbody", {}, ...kids)));
  }
  for (const old of root.querySelectorAll("td.trend")) charts.get(old)?.destroy();
  root.replaceChildren(...parts);
  root.dataset.updated = String(Date.now());
}

// Show ``initial`` (when the page has it) and follow the unit's topic; returns the Live connection.
export function mountSlide(root, initial, statusEl) {
  const topic = `kpi:${root.dataset.unit}`;
  if (initial) render(root, initial);
  const live = new Live({
    onSnapshot: (msg) => { if (msg.topic === topic) render(root, msg.data); },
    onEvent: (msg) => { if (msg.kind === "kpi" && msg.topic === topic) render(root, msg.data); },
    onStatus: (s) => { if (statusEl) statusEl.textContent = s === "open" ? t("js.kpi.connected") : t("js.kpi.connecting"); },
    onError: (msg) => { if (msg.code === "out_of_scope" || msg.code === "forbidden") root.textContent = msg.message; },
  });
  live.subscribe(topic);
  return live;
}
