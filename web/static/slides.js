// A unit's live KPI slide: indicators (value, target, colour, rank among siblings) and, for the
// ministry, its child units ranked on the on-time rate. Kept current over the websocket topic
// kpi:<unit code> (snapshot on subscribe, then one whole-slide event per change). On a site page
// it follows the slide the chair or the province pushes to every screen (issue #14:
// docs/protocol.md, "Pushed slides").
import { locale, t } from "/static/i18n.js";
import { Live } from "/static/live.js";
import { formatNumber, formatPercent } from "/static/numbers.js";
import uPlot from "/static/vendor/uplot-1.6.32/uPlot.esm.js";

const COLOURS = ["green", "amber", "red", "none"];
// One number format everywhere (3.355 · 99,66 %; an English page 3,355 · 99.66 %): numbers.js.
const vnInt = { format: (x) => formatNumber(x, 0, locale) };
const vnPct = { format: (x) => formatNumber(x, 2, locale) };

const pct = (p) => formatPercent(p, 2, locale);

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
  root.dataset.slideUnit = data.unit?.code ?? "";
  root.dataset.updated = String(Date.now());
}

// Which push a site shows: of the pushes scoped to a unit on its path (itself and its
// ancestors), the newest; none: its own slide. The rule of sessions/slide_push.py.
export function effectivePush(pushes, path) {
  const on = new Set(path || []);
  let best = null;
  for (const p of pushes || []) if (on.has(p.scope.unit_id) && (!best || p.seq > best.seq)) best = p;
  return best;
}

export function pushLabel(push) {
  const slide = push.slide.level === "central" ? t("js.slides.national", { name: push.slide.name })
    : t("js.slides.of_unit", { name: push.slide.name });
  return t("js.slides.pushed", { slide, by: push.scope.name });
}

// Show ``initial`` (when the page has it) and follow the unit's topic; returns the Live connection.
// With ``meeting`` (a site page), follow the meeting's pushed slides too: the pushed unit's topic
// replaces the own one while a push applies, and "Đang trình chiếu: …" says whose it is.
export function mountSlide(root, initial, statusEl, { meeting = null } = {}) {
  const own = root.dataset.unit;
  let topic = `kpi:${own}`;
  let pushes = null;  // {seq, pushes, path}: the meeting snapshot's, then every newer slide event
  const meetingTopic = meeting ? `meeting:${meeting}` : null;
  const banner = meeting ? el("p", { class: "notice slide-pushed", id: "slide-pushed", role: "status", hidden: "" }) : null;
  if (banner) root.before(banner);
  if (initial) render(root, initial);
  const follow = () => {
    const push = effectivePush(pushes.pushes, pushes.path);
    const want = `kpi:${push ? push.slide.code : own}`;
    root.dataset.pushed = push ? push.slide.code : "";
    root.dataset.pushSeq = String(pushes.seq);
    banner.hidden = !push;
    banner.textContent = push ? pushLabel(push) : "";
    if (want !== topic) {
      live.topics.delete(topic);
      live.raw({ type: "unsubscribe", topic });
      topic = want;
      live.subscribe(topic);
    }
  };
  const live = new Live({
    onSnapshot: (msg) => {
      if (msg.topic === topic) render(root, msg.data);
      else if (meetingTopic && msg.topic === meetingTopic) {
        const s = msg.data.slides || {};
        pushes = { seq: msg.seq, pushes: s.pushes || [], path: s.path || [] };
        follow();
      }
    },
    onEvent: (msg) => {
      if (msg.kind === "kpi" && msg.topic === topic) render(root, msg.data);
      else if (msg.kind === "slide" && meetingTopic && msg.meeting === meeting && pushes && msg.data.seq >= pushes.seq) {
        pushes = { ...pushes, seq: msg.data.seq, pushes: msg.data.pushes };
        follow();
      }
    },
    onStatus: (s) => { if (statusEl) statusEl.textContent = s === "open" ? t("js.kpi.connected") : t("js.kpi.connecting"); },
    onError: (msg) => {
      // A site's own slide is always in scope: out_of_scope there is a released push's (after a
      // reconnect) — the meeting snapshot that follows moves back to the own slide.
      if (msg.code === "forbidden" || (msg.code === "out_of_scope" && !meetingTopic)) root.textContent = msg.message;
    },
  });
  live.subscribe(topic);
  if (meetingTopic) live.subscribe(meetingTopic);
  return live;
}
