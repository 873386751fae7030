// What the chair console, the province console and the site page share: labels, DOM helpers,
// the meeting view, roll-call counts, the seat table, the hand queue, the live connection.
// Each page has its own module: chair.js, province.js, site.js.
import { Live } from "/static/live.js";
import { t, locale } from "/static/i18n.js";

// Meeting states and roll-call statuses, by code, in the page's language.
export const STATE_LABEL = {
  scheduled: t("js.meeting.state.scheduled"), rehearsal: t("js.meeting.state.rehearsal"),
  live: t("js.meeting.state.live"), concluded: t("js.meeting.state.concluded"),
  cancelled: t("js.meeting.state.cancelled"),
};
export const STATUS_LABEL = {
  not_called: t("js.meeting.status.not_called"),
  present_online: t("js.meeting.status.present_online"),
  present_in_person: t("js.meeting.status.present_in_person"),
  absent: t("js.meeting.status.absent"),
};

export const $ = (sel) => document.querySelector(sel);
export const el = (tag, attrs = {}, ...kids) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== false && v != null) node.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids) node.append(kid);
  return node;
};

export function flash(message) {
  const box = $("#flash");
  box.textContent = message;
  box.hidden = false;
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => { box.hidden = true; }, 6000);
}

export function connStatus(state) {
  const node = $("#conn");
  node.dataset.state = state;
  node.textContent = { open: t("js.meeting.conn.open"), connecting: t("js.meeting.conn.connecting"),
    closed: t("js.meeting.conn.closed") }[state];
}

export class MeetingView {
  constructor(meetingId) { this.meetingId = meetingId; this.meeting = null; this.onAir = null; }
  // Granted is not on air: the central bridge says when the floor holder's media reaches the programme.
  setOnAir(data) { this.onAir = data; this.showOnAir(); }
  showOnAir() {
    const badge = $("#on-air");
    if (!badge) return;
    const floor = this.meeting?.floor?.code || null;
    const air = this.onAir;
    if (!floor) { badge.hidden = true; badge.dataset.onAir = ""; return; }
    const live = air && air.code === floor && (air.video || air.audio);
    badge.hidden = false;
    badge.dataset.onAir = live ? "1" : "0";
    badge.textContent = live ? t("js.meeting.on_air") : t("js.meeting.not_on_air");
  }
  apply(data) {
    if (this.meeting && data.seq < this.meeting.seq) return;
    this.meeting = data;
    // A site connects (roll call) only once the meeting is open: rehearsal or live.
    if (["rehearsal", "live"].includes(data.state) && this.onOpen && !this.joined) {
      this.joined = true;
      this.onOpen();
    }
    if (["concluded", "cancelled"].includes(data.state)) this.onClose?.();
    const st = $("#state");
    st.textContent = STATE_LABEL[data.state];
    st.dataset.state = data.state;
    st.className = `badge state-${data.state}`;
    const holder = $("#floor-holder");
    holder.textContent = data.floor ? `${data.floor.name} (${data.floor.code})` : t("js.meeting.floor_chair");
    holder.dataset.unit = data.floor ? data.floor.code : "";
    this.showOnAir();
    // issue #17: "đang ghi hình". The newest meeting at the time the module is there, not this
    // call's: two calls' imports may resolve in either order, and an older snapshot shown last
    // left a site page without the badge.
    import("/static/recording_badge.js").then((m) => m.showRecording(this.meeting));
    // the moves the server's state machine allows from here (sessions.meetings.TRANSITIONS)
    document.querySelectorAll(".state-btn").forEach((b) => { b.disabled = !(data.next_states || []).includes(b.dataset.to); });
  }
}

export function counts(seats) {
  const c = { expected: 0, present: 0, online: 0, absent: 0, not_called: 0 };
  for (const s of seats) {
    c.expected++;
    if (s.present) c.present++;  // the server's rule (sessions.meetings.is_present)
    if (s.online) c.online++;
    if (s.status === "absent") c.absent++;
    if (s.status === "not_called") c.not_called++;
  }
  return c;
}

export function levelSummary(seats) {
  const names = { province: t("js.meeting.level.province"), district: t("js.meeting.level.district"),
    commune: t("js.meeting.level.commune") };
  return Object.entries(names).map(([lv, name]) => {
    const c = counts(seats.filter((s) => s.level === lv));
    return c.expected
      ? t("js.meeting.level_summary", { level: name, present: vn1.format(c.present), expected: vn1.format(c.expected),
        online: vn1.format(c.online) })
      : "";
  }).filter(Boolean).join(" · ");
}

// One seat table (province console, chair drill-down), with in-person / absent marking.
export class SeatTable {
  constructor(live, meetingId, { chair, store }) {
    this.live = live; this.meetingId = meetingId; this.chair = chair; this.store = store;
    this.dialog = $("#absent-dialog");
    this.dialog?.addEventListener("close", () => this.absentClosed());
  }
  act(action, params) {
    return this.live.action(this.meetingId, action, params).catch((e) => { flash(e.message); throw e; });
  }
  render(seats) {
    const body = $("#seats tbody");
    body.replaceChildren(...seats.map((s) => this.row(s)));
  }
  row(s) {
    const actions = el("td", {});
    if (!s.online) {
      actions.append(el("button", { class: "link", onclick: () => this.act("mark", { unit_id: s.unit_id, status: "present_in_person" }) }, t("js.meeting.mark_in_person")), " ");
      actions.append(el("button", { class: "link", onclick: () => this.askAbsent(s) }, t("js.meeting.mark_absent")), " ");
    }
    if (s.status !== "not_called" && !s.online) {
      actions.append(el("button", { class: "link", onclick: () => this.act("mark", { unit_id: s.unit_id, status: "not_called" }) }, t("js.meeting.reset")), " ");
    }
    if (this.chair) {
      actions.append(el("button", { class: "link", onclick: () => grantFloor(this.live, this.meetingId, { unit_id: s.unit_id }) }, t("js.meeting.grant")), " ");
    }
    if (this.chair || s.muted_by !== "chair") {  // the chair's mute is the chair's alone to lift
      actions.append(s.muted
        ? el("button", { class: "link", onclick: () => this.act("unmute", { unit_id: s.unit_id }) }, t("js.meeting.unmute"))
        : el("button", { class: "link", onclick: () => this.act("mute", { unit_id: s.unit_id }) }, t("js.meeting.mute")));
    }
    const status = s.status === "absent" && s.reason
      ? t("js.meeting.status_reason", { status: STATUS_LABEL[s.status], reason: s.reason })
      : STATUS_LABEL[s.status];
    return el("tr", { "data-unit": s.code, "data-status": s.status, "data-online": s.online ? "1" : "0" },
      el("td", {}, s.code), el("td", {}, s.name), el("td", { class: `st-${s.status}` }, status),
      this.connection(s),
      el("td", {}, s.hand_at ? "✋" : "", speakingMark(this.store, s)), actions);
  }
  connection(s) {
    const h = this.store?.health.get(s.unit_id);
    const base = s.online ? t("js.meeting.online") : (s.status === "present_online" ? t("js.meeting.disconnected") : "—");
    return el("td", { class: h ? `health-${h.connected ? h.level : "down"}` : "", "data-health": h ? (h.connected ? h.level : "down") : "" },
      base + (s.online || h?.connected === false ? healthText(h) : ""));
  }
  askAbsent(s) {
    this.absentSeat = s;
    $("#absent-unit").textContent = s.name;
    $("#absent-reason").value = "";
    $("#absent-error").hidden = true;
    this.dialog.showModal();
  }
  absentClosed() {
    if (this.dialog.returnValue !== "ok" || !this.absentSeat) return;
    const reason = $("#absent-reason").value;
    const seat = this.absentSeat;
    this.act("mark", { unit_id: seat.unit_id, status: "absent", reason }).catch(() => {
      // Keep what was typed: reopen with the message.
      $("#absent-error").textContent = t("js.meeting.reason_required");
      $("#absent-error").hidden = false;
      this.dialog.showModal();
      $("#absent-reason").value = reason;
    });
  }
}

// A site speaking (its bridge reads the RFC 6464 level of its microphone), muted or not.
export function speakingMark(store, s) {
  const sp = store?.speaking?.get(s.unit_id);
  if (!sp?.speaking) return "";
  return el("span", { class: s.muted ? "speaking muted-speaker" : "speaking", "data-speaking": "1" },
    ` ● ${s.muted ? t("js.meeting.speaking_muted") : t("js.meeting.speaking")}`);
}

// Grant the floor; a site that is not connected needs the chair's confirmation (the server says so).
export function grantFloor(live, meetingId, target) {
  return live.action(meetingId, "grant", target).catch((e) => {
    if (e.code === "confirm_required" && confirm(e.message)) {
      return live.action(meetingId, "grant", { ...target, confirm: true }).catch((err) => { flash(err.message); throw err; });
    }
    if (e.code !== "confirm_required") flash(e.message);
    throw e;
  });
}

export function renderHands(store, live, meetingId, chair) {
  const hands = store.hands();
  $("#hand-count").textContent = hands.length ? `(${hands.length})` : "";
  $("#hands").replaceChildren(...hands.map((s) => el("li", { "data-unit": s.code }, `${s.name} (${s.code}) `,
    speakingMark(store, s), " ",
    chair ? el("button", { class: "link", onclick: () => grantFloor(live, meetingId, { unit_id: s.unit_id }).catch(() => {}) }, t("js.meeting.grant")) : "",
    chair ? " " : "",
    chair ? el("button", { class: "link", onclick: () => live.action(meetingId, "lower_hand", { unit_id: s.unit_id }).catch((e) => flash(e.message)) }, t("js.meeting.lower_hand")) : "")));
}

// The chair and province consoles both follow a meeting topic and a roll-call topic.
export function rollcallLive(view, store, render) {
  // Health arrives every few seconds per site: re-render at most twice a second for it.
  let pending = null;
  const soon = () => { if (!pending) pending = setTimeout(() => { pending = null; render(); }, 500); };
  return new Live({
    onStatus: connStatus,
    onError: (e) => flash(e.message),
    onSnapshot: (m) => {
      if (m.topic.startsWith("meeting:")) view.apply(m.data.meeting);
      else { store.load(m.data); render(); }
    },
    onEvent: (m) => {
      if (m.kind === "meeting") view.apply(m.data);
      else if (m.kind === "health") { store.health.set(m.data.unit_id, m.data); soon(); }
      else if (m.kind === "speaking") { store.speaking.set(m.data.unit_id, m.data); render(); }
      else if (m.kind === "on_air") view.setOnAir(m.data);
      else { store.apply(m.data); render(); }
    },
  });
}

export const vn1 = new Intl.NumberFormat(locale, { maximumFractionDigits: 1 });
export const HEALTH_LABEL = { good: t("js.meeting.health.good"), fair: t("js.meeting.health.fair"),
  poor: t("js.meeting.health.poor"), down: t("js.meeting.health.down") };

// A site's connection health as its bridge measured it (RTT, loss, bitrate, frame rate).
export function healthText(h) {
  if (!h) return "";
  if (!h.connected) return ` · ${HEALTH_LABEL.down}`;
  const parts = [HEALTH_LABEL[h.level] || h.level];
  if (h.rtt_ms != null) parts.push(`${vn1.format(h.rtt_ms)} ms`);
  if (h.loss != null) parts.push(t("js.meeting.health.loss", { pct: vn1.format(h.loss * 100) }));
  if (h.kbps != null) parts.push(`${vn1.format(h.kbps)} kb/s`);
  if (h.fps != null) parts.push(t("js.meeting.health.fps", { fps: vn1.format(h.fps) }));
  return ` · ${parts.join(", ")}`;
}

