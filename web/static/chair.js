// The chair console: the programme, the floor, the hand queue, the roll call per province, conclusions.
import { $, el, flash, counts, levelSummary, grantFloor, renderHands, rollcallLive, MeetingView, SeatTable } from "/static/consoles.js";
import { mountMedia } from "/static/media.js";
import { SeatStore } from "/static/live.js";
import { t } from "/static/i18n.js";

export function chairConsole(meetingId, rootCode) {
  const view = new MeetingView(meetingId);
  const store = new SeatStore();
  let drill = null;
  const live = rollcallLive(view, store, () => render());
  const table = new SeatTable(live, meetingId, { chair: true, store });
  const render = () => {
    const seats = [...store.seats.values()];
    const all = counts(seats);
    $("#totals").textContent = t("js.meeting.totals", { present: all.present, expected: all.expected, online: all.online, absent: all.absent });
    $("#level-counts").textContent = levelSummary(seats);
    const byProv = new Map();
    for (const s of seats) {
      const key = s.province_id ?? 0;
      if (!byProv.has(key)) byProv.set(key, []);
      byProv.get(key).push(s);
    }
    const rows = [...byProv.entries()].map(([pid, list]) => {
      const p = store.provinces[pid] || { code: "—", name: t("js.meeting.central") };
      const c = counts(list);
      return el("tr", { "data-province": p.code, tabindex: "0", class: "clickable",
        onclick: () => { drill = pid; render(); },
        onkeydown: (e) => { if (e.key === "Enter") { drill = pid; render(); } } },
        el("td", {}, p.code), el("td", {}, p.name), el("td", { class: "num present" }, `${c.present}/${c.expected}`),
        el("td", { class: "num" }, String(c.online)), el("td", { class: "num" }, String(c.absent)),
        el("td", { class: "num" }, String(c.not_called)));
    }).sort((a, b) => a.dataset.province.localeCompare(b.dataset.province));
    $("#provinces tbody").replaceChildren(...rows);
    renderHands(store, live, meetingId, true);
    if (drill !== null) {
      const p = store.provinces[drill] || { name: t("js.meeting.central") };
      $("#drill").hidden = false;
      $("#drill-title").textContent = t("js.meeting.drill_title", { name: p.name });
      table.render((byProv.get(drill) || []).sort((a, b) => a.code.localeCompare(b.code)));
    }
  };
  live.subscribe(`meeting:${meetingId}`);
  live.subscribe(`rollcall:${meetingId}:${rootCode}`);
  // The chair's camera and microphone go to the central bridge from rehearsal on.
  const media = mountMedia(meetingId, { alwaysPublish: true });
  view.onOpen = () => media.start();
  view.onClose = () => media.stop();
  document.querySelectorAll(".state-btn").forEach((b) => b.addEventListener("click", () => {
    if (b.dataset.to === "concluded" && !confirm(t("js.meeting.confirm_end"))) return;
    if (b.dataset.to === "cancelled" && !confirm(t("js.meeting.confirm_cancel"))) return;
    live.action(meetingId, "state", { to: b.dataset.to }).catch((e) => flash(e.message));
  }));
  $("#next-btn").addEventListener("click", () => live.action(meetingId, "next").catch((e) => flash(e.message)));
  $("#revoke-btn").addEventListener("click", () => live.action(meetingId, "revoke").catch((e) => flash(e.message)));
  $("#grant-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const unit = e.target.unit.value.trim();
    grantFloor(live, meetingId, { unit }).then(() => { e.target.reset(); }).catch(() => {});
  });
  $("#mute-all-btn").addEventListener("click", () => live.action(meetingId, "mute_all").catch((e) => flash(e.message)));
  $("#unmute-all-btn").addEventListener("click", () => live.action(meetingId, "unmute_all").catch((e) => flash(e.message)));
  $("#lower-all-btn").addEventListener("click", () => live.action(meetingId, "lower_all_hands").catch((e) => flash(e.message)));
}

// The chair's conclusions and the directives they give (POST /api/meetings/{id}/conclusions):
// what was typed stays in the form until the server accepts it.
export function conclusionsPanel(meetingId, rootCode) {
  const form = $("#conclusion-form");
  const error = $("#conclusion-error");
  const list = $("#conclusions");
  const load = async () => {
    const resp = await fetch(`/api/meetings/${meetingId}/conclusions`, { credentials: "same-origin" });
    if (!resp.ok) return;
    const body = await resp.json();
    list.replaceChildren(...body.conclusions.map((c) => el("li", { "data-conclusion": String(c.id) },
      el("p", {}, c.text),
      ...(c.directives.length ? [el("ul", {}, ...c.directives.map((d) => el("li", { "data-directive": String(d.id) },
        el("a", { href: `/directives/${d.id}` }, d.text),
        t("js.meeting.directive_due", { date: d.deadline.split("-").reverse().join("/"), n: d.assignments.length }))))] : []))));
  };
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.hidden = true;
    const f = new FormData(form);
    const body = { text: f.get("text").trim(), directives: [] };
    const text = f.get("directive").trim();
    if (text) {
      const d = { text, deadline: f.get("deadline"), priority: f.get("priority") };
      const units = f.get("units").split(",").map((u) => u.trim()).filter(Boolean);
      if (units.length) d.units = units;
      if (f.get("every_level")) d.every = { unit: rootCode, level: f.get("every_level") };
      if (f.get("lead").trim()) d.lead = f.get("lead").trim();
      const cooperating = f.get("cooperating").split(",").map((u) => u.trim()).filter(Boolean);
      if (cooperating.length) d.cooperating = cooperating;
      body.directives.push(d);
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const resp = await fetch(`/api/meetings/${meetingId}/conclusions`, {
        method: "POST", credentials: "same-origin", body: JSON.stringify(body),
        headers: { "Content-Type": "application/json", "X-CSRF-Token": form.dataset.csrf },
      });
      const answer = await resp.json().catch(() => ({}));
      if (!resp.ok) throw new Error(answer.error?.message || t("js.meeting.error_status", { status: resp.status }));
      form.reset();
      await load();
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  load();
}
