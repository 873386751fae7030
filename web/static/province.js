// The province console: the programme from the province's own bridge, its communes' roll call with
// filters, search and sorting, marking several "present in person" at once, hands, connection
// health, and "call" a commune (its site page shows that the province is calling); beside the list,
// the mosaic of its sites as live thumbnails page by page, a click previewing one (issue #16).
import { $, el, flash, counts, levelSummary, renderHands, rollcallLive, MeetingView, SeatTable, vn1 } from "/static/consoles.js";
import { mountMedia } from "/static/media.js";
import { Mosaic, Preview, layerBadge, viewSwitch } from "/static/mosaic.js";
import { mountContent } from "/static/share.js";
import { SeatStore } from "/static/live.js";
import { t, locale } from "/static/i18n.js";

const BULK_GAP_MS = 220;  // the socket allows 5 actions a second: a long bulk marking stays under it
const hhmm = new Intl.DateTimeFormat(locale, { hour: "2-digit", minute: "2-digit", second: "2-digit", timeZone: "Asia/Ho_Chi_Minh" });
const collator = new Intl.Collator("vi", { sensitivity: "base", numeric: true });

// Search text: lower case, without Vietnamese diacritics (đ too), so "vinh yen" finds "Vĩnh Yên".
// Plain substring matching: no character of a query has a meaning of its own.
export function fold(text) {
  return String(text ?? "").normalize("NFD").replace(/[\u0300-\u036f]/g, "").replace(/đ/g, "d").replace(/Đ/g, "d")
    .toLowerCase().replace(/\s+/g, " ").trim();
}

// How a site's connection is doing, worst first: 0 down/poor … 4 not connected at all.
function healthOf(store, s) {
  const h = store.health.get(s.unit_id);
  if (!s.online) return "offline";
  if (!h) return "unknown";
  return h.connected ? h.level : "down";
}
const HEALTH_RANK = { down: 0, poor: 1, fair: 2, unknown: 3, good: 4, offline: 5 };
const STATUS_RANK = { not_called: 0, absent: 1, present_in_person: 2, present_online: 3 };

export const FILTERS = {
  all: () => true,
  offline: (s) => !s.online,
  hand: (s) => Boolean(s.hand_at),
  absent: (s) => s.status === "absent",
  poor: (s, store) => ["poor", "down"].includes(healthOf(store, s)),
};

const SORTS = {
  name: (a, b) => collator.compare(a.name, b.name) || a.code.localeCompare(b.code),
  status: (a, b) => STATUS_RANK[a.status] - STATUS_RANK[b.status] || collator.compare(a.name, b.name),
};

// The seat table with a pick box in the code cell (for bulk marking) and a "Gọi" button per site.
class ProvinceSeats extends SeatTable {
  constructor(live, meetingId, opts, console) {
    super(live, meetingId, opts);
    this.console = console;
  }
  connection(s) {
    const cell = super.connection(s);
    if (s.online) cell.append(" ", layerBadge(this.store.health.get(s.unit_id)));
    return cell;
  }
  row(s) {
    const tr = super.row(s);
    const c = this.console;
    const codeCell = tr.firstElementChild;
    const pickable = !s.online && s.status !== "present_in_person";
    const box = el("input", { type: "checkbox", class: "pick", "data-unit": s.code, "aria-label": t("js.province.select", { unit: s.name }),
      disabled: !pickable, onchange: (e) => c.pick(s.unit_id, e.target.checked) });
    box.checked = pickable && c.picked.has(s.unit_id);
    codeCell.classList.add("pick");
    codeCell.prepend(box);
    const called = c.called.get(s.unit_id);
    if (s.level !== "province") {
      tr.lastElementChild.append(" ", el("button", { class: "link call-btn", type: "button", "data-unit": s.code,
        title: t("js.province.call_title", { unit: s.name }), onclick: () => c.call(s) }, t("js.province.call")));
      if (called) {
        tr.classList.add("called");
        tr.lastElementChild.append(" ", el("span", { class: "muted called-at" }, t("js.province.called", { unit: s.name, time: called })));
      }
    }
    return tr;
  }
}

export function provinceConsole(meetingId, unitCode) {
  const view = new MeetingView(meetingId);
  const store = new SeatStore();
  const live = rollcallLive(view, store, () => render());
  const state = { filter: "all", query: "", sort: "name", picked: new Set(), called: new Map(), busy: false };
  const table = new ProvinceSeats(live, meetingId, { chair: false, store }, {
    picked: state.picked, called: state.called,
    pick: (unitId, on) => { if (on) state.picked.add(unitId); else state.picked.delete(unitId); renderBulk(); },
    call: (s) => live.action(meetingId, "call", { unit_id: s.unit_id })
      .then(() => { state.called.set(s.unit_id, hhmm.format(new Date())); render(); })
      .catch((e) => flash(e.message)),
  });
  const media = mountMedia(meetingId);
  const preview = new Preview(meetingId, $("#mosaic-preview"), { grant: null });
  const mosaic = new Mosaic(meetingId, { grid: $("#mosaic-grid"), nav: $("#mosaic-nav"), perPage: 12,
    onPick: (site) => preview.open(site) });
  window.__mosaic = { mosaic, preview };  // for the browser tests, as window.__media
  const selectView = viewSwitch({ list: { tab: $("#view-list"), panel: $("#site-list") },
    mosaic: { tab: $("#view-mosaic"), panel: $("#mosaic") } }, (name) => {
    mosaic.show(name === "mosaic");
    if (name !== "mosaic") preview.close();
  });
  mountContent(media);  // a shared screen shown large, the speaker small

  let shown = [];
  const sites = () => [...store.seats.values()].filter((s) => s.code !== unitCode);
  const render = () => {
    const all = [...store.seats.values()];
    const c = counts(all);
    $("#totals").textContent = t("js.meeting.totals", { present: vn1.format(c.present), expected: vn1.format(c.expected),
      online: vn1.format(c.online), absent: vn1.format(c.absent) });
    $("#level-counts").textContent = levelSummary(all);
    const mine = sites();
    // the mosaic: its communes (connected ones first), by name
    mosaic.setSites([...mine].sort(SORTS.name));
    for (const [name, test] of Object.entries(FILTERS)) {
      const n = mine.filter((s) => test(s, store)).length;
      const slot = document.querySelector(`.count[data-count="${name}"]`);
      if (slot) slot.textContent = `(${n.toLocaleString(locale)})`;
    }
    const q = fold(state.query);
    const sort = state.sort === "connection"
      ? (a, b) => HEALTH_RANK[healthOf(store, a)] - HEALTH_RANK[healthOf(store, b)] || SORTS.name(a, b)
      : SORTS[state.sort] || SORTS.name;
    shown = mine.filter((s) => FILTERS[state.filter](s, store) && (!q || fold(s.name).includes(q) || fold(s.code).includes(q)))
      .sort(sort);
    // the province's own seat stays on top while it matches nothing narrower than "all"
    const own = state.filter === "all" && !q ? all.filter((s) => s.code === unitCode) : [];
    table.render([...own, ...shown]);
    const names = [...document.querySelectorAll("#seats thead th")].map((th) => th.textContent.trim());
    for (const tr of document.querySelectorAll("#seats tbody tr")) {
      [...tr.children].forEach((cell, i) => { if (names[i]) cell.dataset.label = names[i]; });  // phones: card labels
    }
    $("#shown-count").textContent = t("js.province.shown", { shown: shown.length.toLocaleString(locale), total: mine.length.toLocaleString(locale) });
    $("#no-match").hidden = shown.length > 0 || own.length > 0;
    // a site that came online (or was marked) cannot stay picked
    for (const id of [...state.picked]) {
      const s = store.seats.get(id);
      if (!s || s.online || s.status === "present_in_person") state.picked.delete(id);
    }
    renderBulk();
    renderHands(store, live, meetingId, false);
  };
  const pickable = () => shown.filter((s) => !s.online && s.status !== "present_in_person");
  const renderBulk = () => {
    const btn = $("#bulk-in-person");
    btn.disabled = state.busy || state.picked.size === 0;
    btn.textContent = state.picked.size ? t("js.province.bulk_n", { n: state.picked.size.toLocaleString(locale) }) : btn.dataset.label;
    const all = $("#select-shown");
    const candidates = pickable();
    all.checked = candidates.length > 0 && candidates.every((s) => state.picked.has(s.unit_id));
    all.indeterminate = !all.checked && candidates.some((s) => state.picked.has(s.unit_id));
  };
  $("#bulk-in-person").dataset.label = $("#bulk-in-person").textContent;

  // One `mark` per site, spaced to stay within the socket's action budget; stops at the first refusal.
  const markPicked = async () => {
    const ids = [...state.picked];
    const status = $("#bulk-status");
    state.busy = true;
    renderBulk();
    let done = 0;
    try {
      for (const id of ids) {
        status.textContent = t("js.province.bulk_progress", { done, total: ids.length });
        const started = Date.now();
        await live.action(meetingId, "mark", { unit_id: id, status: "present_in_person" });
        done += 1;
        state.picked.delete(id);
        const wait = BULK_GAP_MS - (Date.now() - started);
        if (wait > 0 && done < ids.length) await new Promise((r) => setTimeout(r, wait));
      }
      status.textContent = t("js.province.bulk_done", { done, total: ids.length });
    } catch (e) {
      status.textContent = t("js.province.bulk_failed", { done, total: ids.length, message: e.message });
      flash(e.message);
    } finally {
      state.busy = false;
      render();
    }
  };

  for (const radio of document.querySelectorAll('input[name="site-filter"]')) {
    radio.addEventListener("change", () => { if (radio.checked) { state.filter = radio.value in FILTERS ? radio.value : "all"; render(); } });
  }
  $("#site-search").addEventListener("input", (e) => { state.query = e.target.value.slice(0, 100); render(); });
  $("#site-sort").addEventListener("change", (e) => { state.sort = e.target.value; render(); });
  $("#select-shown").addEventListener("change", (e) => {
    for (const s of pickable()) { if (e.target.checked) state.picked.add(s.unit_id); else state.picked.delete(s.unit_id); }
    render();
  });
  $("#bulk-in-person").addEventListener("click", () => { if (!state.busy && state.picked.size) markPicked(); });

  live.subscribe(`meeting:${meetingId}`);
  live.subscribe(`rollcall:${meetingId}:${unitCode}`);
  // With a bridge, the province's own bridge reports it connected while the programme plays;
  // without one, the console's own connection does (as on a site page).
  view.onOpen = async () => {
    const grant = await media.start();
    if (!grant?.bridge) live.join(meetingId);
  };
  view.onClose = () => { media.ended(); selectView("list"); };
}
