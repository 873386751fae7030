// Directives: the dashboard kept current over the websocket topic directives:<unit code> (an
// event only says "counts moved"; the counts are re-read over HTTP, at most once a second) with
// its charts (dashboard.js), and
// the assignment page's forms, which post to the JSON API with the page's CSRF token.
import { t } from "/static/i18n.js";
import { Live } from "/static/live.js";

function fill(table, data, fmt) {
  const rows = new Map(data.rows.map((r) => [r.unit.code, r]));
  for (const tr of table.querySelectorAll("tr[data-unit]")) {
    const row = tr.dataset.unit === "*" ? { counts: data.totals, total: data.total } : rows.get(tr.dataset.unit);
    if (!row) continue;
    for (const td of tr.querySelectorAll("td[data-bucket]")) td.textContent = fmt.formatInt(row.counts[td.dataset.bucket]);
    tr.querySelector('td[data-field="total"]').textContent = fmt.formatInt(row.total);
    const rate = tr.querySelector('td[data-field="rate"]');
    if (rate) rate.textContent = fmt.formatPct(fmt.onTimeRate(row.counts));
  }
  table.dataset.updated = String(Date.now());
}

export async function mountBoard(table, statusEl) {
  const unit = table.dataset.unit;
  const topic = `directives:${unit}`;
  const fmt = await import("/static/dashboard.js");
  const dataEl = document.getElementById("board-data");
  const charts = dataEl ? fmt.mountCharts(document.getElementById("chart-buckets"), document.getElementById("chart-trend"),
                                          JSON.parse(dataEl.textContent)) : null;
  const show = (data) => { fill(table, data, fmt); charts?.update(data); };
  let timer = null;
  let last = 0;
  const refresh = async () => {
    timer = null;
    last = Date.now();
    const resp = await fetch(`/api/directives/dashboard?unit=${encodeURIComponent(unit)}&trend=1`, { credentials: "same-origin" });
    if (resp.ok) show(await resp.json());
  };
  const schedule = () => {
    if (timer === null) timer = setTimeout(refresh, Math.max(0, 1000 - (Date.now() - last)));
  };
  const live = new Live({
    onSnapshot: (msg) => { if (msg.topic === topic) show(msg.data); },
    onEvent: (msg) => { if (msg.kind === "directives") schedule(); },
    onStatus: (s) => { if (statusEl) statusEl.textContent = s === "open" ? t("js.directives.connected") : t("js.directives.connecting"); },
  });
  live.subscribe(topic);
  return live;
}

async function send(url, csrf, body) {
  const init = { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf } };
  if (body instanceof FormData) init.body = body;
  else { init.body = JSON.stringify(body || {}); init.headers["Content-Type"] = "application/json"; }
  const resp = await fetch(url, init);
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(data.error?.message || t("js.directives.error_status", { status: resp.status }));
  return data;
}

function guard(form, errorEl, action) {
  return async (event) => {
    event?.preventDefault();
    errorEl.hidden = true;
    try { await action(); location.reload(); } catch (err) { errorEl.textContent = err.message; errorEl.hidden = false; }
  };
}

export function mountAssignment(doc) {
  const report = doc.getElementById("report-form");
  if (report) {
    const id = report.dataset.assignment;
    const err = doc.getElementById("report-error");
    report.addEventListener("submit", guard(report, err, () => send(`/api/assignments/${id}/reports`, report.dataset.csrf, new FormData(report))));
    doc.getElementById("done-button").addEventListener("click", guard(report, err, () => send(`/api/assignments/${id}/done`, report.dataset.csrf)));
  }
  const breakdown = doc.getElementById("breakdown-form");
  if (breakdown) {
    const id = breakdown.dataset.assignment;
    const err = doc.getElementById("breakdown-error");
    breakdown.addEventListener("submit", guard(breakdown, err, () => {
      const f = new FormData(breakdown);
      const body = { text: f.get("text"), deadline: f.get("deadline"), priority: f.get("priority") || "normal" };
      const list = (name) => String(f.get(name) || "").split(",").map((c) => c.trim()).filter(Boolean);
      if (list("units").length) body.units = list("units");
      if (list("cooperating").length) body.cooperating = list("cooperating");
      if (String(f.get("lead") || "").trim()) body.lead = String(f.get("lead")).trim();
      if (f.get("level")) body.every = { unit: breakdown.closest("[data-unit-code]")?.dataset.unitCode || "", level: f.get("level") };
      return send(`/api/assignments/${id}/breakdown`, breakdown.dataset.csrf, body);
    }));
  }
}
