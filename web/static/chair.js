// The chair console, on one screen: the programme and the floor, the hand queue (province,
// waiting time, a sound and a visual cue when a hand goes up), the roll call per province with
// its drill-down beside it, and the conclusions in a tab of that side panel.
import { $, el, flash, counts, levelSummary, grantFloor, rollcallLive, MeetingView, SeatTable, speakingMark,
  HEALTH_LABEL } from "/static/consoles.js";
import { mountMedia } from "/static/media.js";
import { Mosaic, Preview, layerBadge, layerMarks, viewSwitch } from "/static/mosaic.js";
import { mountContent } from "/static/share.js";
import { SeatStore } from "/static/live.js";
import { t, locale } from "/static/i18n.js";
import { UnitPicker, listSource, serverSource } from "/static/pickers.js";

const nf = new Intl.NumberFormat(locale);
const num = (n) => nf.format(n);

// How long a hand has been up, in the page's words ("3 phút").
export function waited(handAt, now = Date.now()) {
  const minutes = Math.max(0, Math.floor((now - Date.parse(handAt)) / 60000));
  if (minutes < 1) return t("js.chair.wait_under_minute");
  if (minutes < 60) return t("js.chair.wait_minutes", { n: num(minutes) });
  return t("js.chair.wait_hours", { h: num(Math.floor(minutes / 60)), m: num(minutes % 60) });
}

// A site's connection quality as an icon (bars) with its words for screen readers and a tooltip.
function signal(store, s) {
  const h = store.health.get(s.unit_id);
  const level = !s.online ? "off" : h ? (h.connected ? h.level : "down") : "unknown";
  const words = level === "off" ? t("js.chair.signal_off") : level === "unknown" ? t("js.chair.signal_unknown")
    : t("js.chair.signal", { level: HEALTH_LABEL[level] || level });
  return el("span", { class: `sig sig-${level}`, role: "img", "aria-label": words, title: words, "data-signal": level },
    el("i"), el("i"), el("i"));
}

// The chair's drill-down: the shared seat table with a connection-quality icon per site, and the
// rendition it receives when that is not the high one ("Hình thấp", "Chỉ âm thanh").
class ChairSeatTable extends SeatTable {
  connection(s) {
    const cell = super.connection(s);
    cell.prepend(signal(this.store, s), " ");
    if (s.online) cell.append(" ", layerBadge(this.store.health.get(s.unit_id)));
    return cell;
  }
}

// A short beep (WebAudio, no sound file). Browsers allow it once the chair has clicked the page.
let audio = null;
function beep() {
  try {
    audio ??= new AudioContext();
    if (audio.state === "suspended") audio.resume().catch(() => {});
    const at = audio.currentTime;
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(0.25, at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.3);
    osc.connect(gain).connect(audio.destination);
    osc.start(at);
    osc.stop(at + 0.32);
    return true;
  } catch {
    return false;
  }
}

export function chairConsole(meetingId, rootCode) {
  const view = new MeetingView(meetingId);
  const store = new SeatStore();
  let drill = null;
  let known = null;  // units whose hand was up at the last render (null: before the first snapshot)
  let mosaic = null;
  const live = rollcallLive(view, store, () => render());
  const table = new ChairSeatTable(live, meetingId, { chair: true, store });
  const provinceName = (s) => {
    const p = store.provinces[s.province_id];
    return p && p.code !== s.code ? p.name : "";
  };

  const cue = (fresh) => {
    const panel = $("#hands-panel");
    panel.dataset.cue = String(Number(panel.dataset.cue || 0) + fresh.length);
    if (beep()) panel.dataset.beeps = String(Number(panel.dataset.beeps || 0) + 1);
    panel.classList.remove("cue");
    void panel.offsetWidth;  // restart the animation
    panel.classList.add("cue");
    $("#hands-cue").textContent = t("js.chair.hand_up", { names: fresh.map((s) => s.name).join(", ") });
  };

  const renderHands = () => {
    const hands = store.hands();
    $("#hand-count").textContent = hands.length ? `(${num(hands.length)})` : "";
    $("#hands-empty").hidden = hands.length > 0;
    const now = Date.now();
    $("#hands").replaceChildren(...hands.map((s, i) => el("li", { "data-unit": s.code, class: "hand" },
      el("span", { class: "hand-pos" }, `${num(i + 1)}.`),
      el("span", { class: "hand-who" }, el("strong", {}, s.name), ` (${s.code})`,
        provinceName(s) ? el("span", { class: "hand-province" }, ` · ${provinceName(s)}`) : ""),
      el("span", { class: "hand-wait", "data-since": s.hand_at, title: t("js.chair.waiting") }, waited(s.hand_at, now)),
      signal(store, s), speakingMark(store, s),
      el("span", { class: "hand-actions" },
        el("button", { class: "small", onclick: () => grantFloor(live, meetingId, { unit_id: s.unit_id }).catch(() => {}) },
          t("js.meeting.grant")), " ",
        el("button", { class: "small secondary", onclick: () => live.action(meetingId, "lower_hand", { unit_id: s.unit_id })
          .catch((e) => flash(e.message)) }, t("js.meeting.lower_hand"))))));
    const up = new Set(hands.map((s) => s.unit_id));
    if (known !== null) {
      const fresh = hands.filter((s) => !known.has(s.unit_id));
      if (fresh.length) cue(fresh);
    }
    known = up;
  };

  const openDrill = (pid) => {
    drill = pid;
    selectTab("drill");
    render();
  };

  const render = () => {
    const seats = [...store.seats.values()];
    const all = counts(seats);
    $("#totals").textContent = t("js.meeting.totals", { present: num(all.present), expected: num(all.expected),
      online: num(all.online), absent: num(all.absent) });
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
      const missing = list.filter((s) => !s.online && !["present_in_person", "absent"].includes(s.status)).length;
      const poor = list.filter((s) => { const h = store.health.get(s.unit_id); return s.online && h && (!h.connected || h.level === "poor"); }).length;
      const hands = list.filter((s) => s.hand_at).length;
      const speaking = list.some((s) => store.speaking.get(s.unit_id)?.speaking);
      const marks = el("span", { class: "prov-marks" },
        hands ? el("span", { class: "badge mark-hand", title: t("js.chair.prov_hands", { n: num(hands) }) },
          t("js.chair.mark_hands", { n: num(hands) })) : "",
        poor ? el("span", { class: "badge mark-poor", title: t("js.chair.prov_poor", { n: num(poor) }) },
          t("js.chair.mark_poor", { n: num(poor) })) : "",
        ...layerMarks(store, list),
        speaking ? el("span", { class: "speaking" }, ` ● ${t("js.meeting.speaking")}`) : "");
      return el("tr", { "data-province": p.code, tabindex: "0", class: pid === drill ? "clickable selected" : "clickable",
        "aria-selected": pid === drill ? "true" : "false",
        onclick: () => openDrill(pid),
        onkeydown: (e) => { if (e.key === "Enter") openDrill(pid); } },
        el("td", {}, p.code), el("td", {}, p.name, marks), el("td", { class: "num present" }, `${num(c.present)}/${num(c.expected)}`),
        el("td", { class: "num online" }, `${num(c.online)}/${num(c.expected)}`), el("td", { class: "num" }, num(c.absent)),
        el("td", { class: missing ? "num missing" : "num" }, num(missing)));
    }).sort((a, b) => a.dataset.province.localeCompare(b.dataset.province));
    $("#provinces tbody").replaceChildren(...rows);
    // the mosaic: the provinces' own rooms (connected ones first), by code
    mosaic?.setSites(seats.filter((s) => s.level === "province").sort((a, b) => a.code.localeCompare(b.code)));
    renderHands();
    if (drill !== null) {
      const p = store.provinces[drill] || { name: t("js.meeting.central") };
      const list = (byProv.get(drill) || []).sort((a, b) => a.code.localeCompare(b.code));
      const c = counts(list);
      $("#drill-title").textContent = t("js.meeting.drill_title", { name: p.name });
      $("#drill-summary").textContent = t("js.chair.drill_summary", { online: num(c.online), expected: num(c.expected),
        absent: num(c.absent), not_called: num(c.not_called) });
      table.render(list);
    }
  };

  // The side panel's tabs: the drill-down of a province, or the conclusions.
  const selectTab = (name) => {
    for (const [tab, panel] of [["#tab-drill", "#drill"], ["#tab-conclusions", "#conclusions-panel"]]) {
      const on = panel === (name === "drill" ? "#drill" : "#conclusions-panel");
      $(tab).setAttribute("aria-selected", on ? "true" : "false");
      $(tab).tabIndex = on ? 0 : -1;
      $(panel).hidden = !on;
    }
  };
  $("#tab-drill").addEventListener("click", () => selectTab("drill"));
  $("#tab-conclusions").addEventListener("click", () => selectTab("conclusions"));
  $(".cc-tabs").addEventListener("keydown", (e) => {
    if (!["ArrowLeft", "ArrowRight"].includes(e.key)) return;
    const next = $("#tab-drill").getAttribute("aria-selected") === "true" ? "conclusions" : "drill";
    selectTab(next);
    $(next === "drill" ? "#tab-drill" : "#tab-conclusions").focus();
  });
  selectTab("conclusions");
  $("#hands-panel").append(el("p", { id: "hands-cue", class: "visually-hidden", role: "status", "aria-live": "assertive" }));
  setInterval(() => {
    const now = Date.now();
    document.querySelectorAll("#hands .hand-wait").forEach((n) => { n.textContent = waited(n.dataset.since, now); });
  }, 15000);

  live.subscribe(`meeting:${meetingId}`);
  live.subscribe(`rollcall:${meetingId}:${rootCode}`);
  // The chair's camera and microphone go to the central bridge from rehearsal on.
  const media = mountMedia(meetingId, { alwaysPublish: true });
  // Beside the programme, the mosaic of the provinces (#16): a page of live thumbnails; a click
  // previews one, with its sound, and the floor can be given from there.
  const preview = new Preview(meetingId, $("#mosaic-preview"), {
    grant: (site) => grantFloor(live, meetingId, { unit_id: site.unit_id }) });
  mosaic = new Mosaic(meetingId, { grid: $("#mosaic-grid"), nav: $("#mosaic-nav"), perPage: 9,
    onPick: (site) => preview.open(site) });
  window.__mosaic = { mosaic, preview };  // for the browser tests, as window.__media
  const programmePanel = document.querySelector(".cc-stage .media-panel");
  programmePanel.id ||= "programme-panel";
  $("#view-programme").setAttribute("aria-controls", programmePanel.id);
  const selectView = viewSwitch({ programme: { tab: $("#view-programme"), panel: programmePanel },
    mosaic: { tab: $("#view-mosaic"), panel: $("#mosaic") } }, (name) => {
    mosaic.show(name === "mosaic");
    if (name !== "mosaic") preview.close();
  });
  mountContent(media);  // the chair shares a screen; any share shown large
  view.onOpen = () => media.start();
  view.onClose = () => { media.stop(); selectView("programme"); };
  document.querySelectorAll(".state-btn").forEach((b) => b.addEventListener("click", () => {
    if (b.dataset.to === "concluded" && !confirm(t("js.meeting.confirm_end"))) return;
    if (b.dataset.to === "cancelled" && !confirm(t("js.meeting.confirm_cancel"))) return;
    live.action(meetingId, "state", { to: b.dataset.to }).catch((e) => flash(e.message));
  }));
  $("#next-btn").addEventListener("click", () => live.action(meetingId, "next").catch((e) => flash(e.message)));
  $("#revoke-btn").addEventListener("click", () => live.action(meetingId, "revoke").catch((e) => flash(e.message)));

  // Granting the floor: pick a site of the meeting by name (its province and connection shown).
  const sites = () => [...store.seats.values()].map((s) => ({ code: s.code, name: s.name, id: s.unit_id,
    province: provinceName(s), online: s.online }));
  const grantPicker = new UnitPicker($("#grant-unit"), { source: listSource(sites),
    describe: (o) => (o.online ? t("js.meeting.online") : t("js.chair.not_connected")) });
  $("#grant-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const typed = e.target.unit.value.trim();
    let target = grantPicker.value ? { unit_id: grantPicker.value.id } : null;
    if (!target) {
      const seat = [...store.seats.values()].find((s) => s.code === typed);
      if (seat) target = { unit_id: seat.unit_id };
      else { flash(t("js.chair.pick_site")); return; }
    }
    grantFloor(live, meetingId, target).then(() => grantPicker.clear()).catch(() => {});
  });
  $("#mute-all-btn").addEventListener("click", () => live.action(meetingId, "mute_all").catch((e) => flash(e.message)));
  $("#unmute-all-btn").addEventListener("click", () => live.action(meetingId, "unmute_all").catch((e) => flash(e.message)));
  $("#lower-all-btn").addEventListener("click", () => live.action(meetingId, "lower_all_hands").catch((e) => flash(e.message)));
}

// The chair's conclusions and the directives they give (POST /api/meetings/{id}/conclusions):
// what was typed stays in the form until the server accepts it. Units are picked by name.
export function conclusionsPanel(meetingId, rootCode) {
  const form = $("#conclusion-form");
  const error = $("#conclusion-error");
  const list = $("#conclusions");
  const source = serverSource(rootCode);
  const pickers = {
    units: new UnitPicker($("#units-search"), { source, hidden: form.units, multiple: true }),
    lead: new UnitPicker($("#lead-search"), { source, hidden: form.lead }),
    cooperating: new UnitPicker($("#cooperating-search"), { source, hidden: form.cooperating, multiple: true }),
  };
  const load = async () => {
    const resp = await fetch(`/api/meetings/${meetingId}/conclusions`, { credentials: "same-origin" });
    if (!resp.ok) return;
    const body = await resp.json();
    list.replaceChildren(...body.conclusions.map((c) => el("li", { "data-conclusion": String(c.id) },
      el("p", {}, c.text),
      ...(c.directives.length ? [el("ul", {}, ...c.directives.map((d) => el("li", { "data-directive": String(d.id) },
        el("a", { href: `/directives/${d.id}` }, d.text),
        t("js.meeting.directive_due", { date: d.deadline.split("-").reverse().join("/"), n: num(d.assignments.length) }))))] : []))));
  };
  const codes = (value) => String(value || "").split(",").map((u) => u.trim()).filter(Boolean);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.hidden = true;
    const f = new FormData(form);
    const body = { text: f.get("text").trim(), directives: [] };
    const text = f.get("directive").trim();
    if (text) {
      const d = { text, deadline: f.get("deadline"), priority: f.get("priority") };
      const units = codes(f.get("units"));
      if (units.length) d.units = units;
      if (f.get("every_level")) d.every = { unit: rootCode, level: f.get("every_level") };
      const lead = codes(f.get("lead"))[0];
      if (lead) d.lead = lead;
      const cooperating = codes(f.get("cooperating"));
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
      Object.values(pickers).forEach((p) => p.clear());
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
