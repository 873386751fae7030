// A unit's live KPI slide: indicators (value, target, colour, rank among siblings) and, for the
// ministry, its child units ranked on the on-time rate. Kept current over the websocket topic
// kpi:<unit code> (snapshot on subscribe, then one whole-slide event per change).
import { Live } from "/static/live.js";

const COLOUR = { green: "Đạt", amber: "Gần đạt", red: "Chưa đạt", none: "Chưa có số liệu" };
const vnInt = new Intl.NumberFormat("vi-VN", { maximumFractionDigits: 0 });
const vnPct = new Intl.NumberFormat("vi-VN", { minimumFractionDigits: 2, maximumFractionDigits: 2 });

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

// "none" means no data — or, for indicators without thresholds (plain counts), nothing to judge.
const badge = (colour, hasData = false) => el("span", { class: `badge kpi-${colour}`, "data-colour": colour },
  colour === "none" && hasData ? "Theo dõi" : COLOUR[colour] || colour);

export function render(root, data) {
  const rows = data.indicators.map((ind) => el("tr", { "data-code": ind.code },
    el("th", { scope: "row" }, ind.name),
    el("td", { class: "num", "data-field": "value" }, valueText(ind)),
    el("td", { class: "num" }, targetText(ind)),
    el("td", {}, badge(ind.colour, ind.has_data)),
    el("td", { class: "num", "data-field": "rank" }, ind.has_data ? `${ind.rank}/${ind.siblings}` : "—")));
  const table = el("table", { class: "kpi-slide" },
    el("thead", {}, el("tr", {}, el("th", {}, "Chỉ tiêu"), el("th", {}, "Giá trị"), el("th", {}, "Mục tiêu"),
      el("th", {}, "Đánh giá"), el("th", {}, "Xếp hạng"))),
    el("tbody", {}, ...rows));
  const parts = [table];
  if (data.children) {
    const kids = data.children.rows.map((r) => el("tr", { "data-code": r.code, class: r.colour === "red" ? "laggard" : "" },
      el("td", { class: "num" }, String(r.rank)), el("th", { scope: "row" }, r.name),
      el("td", { class: "num" }, pct(r.percent)), el("td", {}, badge(r.colour, r.percent != null))));
    parts.push(el("h2", {}, `Xếp hạng đơn vị trực thuộc · ${data.children.name}`),
      el("table", { class: "kpi-ranking" },
        el("thead", {}, el("tr", {}, el("th", {}, "Hạng"), el("th", {}, "Đơn vị"), el("th", {}, "Tỷ lệ"),
          el("th", {}, "Đánh giá"))),
        el("tbody", {}, ...kids)));
  }
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
    onStatus: (s) => { if (statusEl) statusEl.textContent = s === "open" ? "đã kết nối" : "đang kết nối…"; },
    onError: (msg) => { if (msg.code === "out_of_scope" || msg.code === "forbidden") root.textContent = msg.message; },
  });
  live.subscribe(topic);
  return live;
}
