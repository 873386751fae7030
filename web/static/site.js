// The site page: the programme, this site's seat (roll call, mute, hand), its KPI slide, the check of
// camera and microphone before it sends anything, and its province's calls.
import { $, flash, connStatus, MeetingView, STATUS_LABEL } from "/static/consoles.js";
import { mountMedia } from "/static/media.js";
import { mountContent } from "/static/share.js";
import { Live } from "/static/live.js";
import { DeviceCheck, rememberedChoice } from "/static/prejoin.js";
import { t, locale } from "/static/i18n.js";

const OPEN = ["rehearsal", "live"];
const hhmm = new Intl.DateTimeFormat(locale, { hour: "2-digit", minute: "2-digit", second: "2-digit", timeZone: "Asia/Ho_Chi_Minh" });

// A narrow slide shows each KPI row as a card (site.css): every cell carries its column's name.
export function labelSlideCells(root) {
  const label = () => {
    for (const table of root.querySelectorAll("table")) {
      const names = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
      for (const tr of table.querySelectorAll("tbody tr")) {
        [...tr.children].forEach((cell, i) => { if (names[i] && !cell.dataset.label) cell.dataset.label = names[i]; });
      }
    }
  };
  new MutationObserver(label).observe(root, { childList: true });
  label();
}

// What this site's player gets now, as its bridge reports it (issue #16: ``layer`` of its health).
function showLayer(layer) {
  const box = $("#my-layer");
  if (!box) return;
  box.dataset.layer = layer || "";
  box.hidden = !["low", "audio"].includes(layer);
  if (!box.hidden) box.textContent = t(`js.mosaic.site_${layer}`);
}

function showCall(data) {
  const box = $("#call-notice");
  if (!box) return;
  $("#call-text").textContent = t("js.site.call", { province: data.by_name, unit: data.name });
  const at = data.at ? new Date(data.at) : null;
  $("#call-time").textContent = at && !Number.isNaN(at.getTime()) ? t("js.site.call_at", { time: hhmm.format(at) }) : "";
  box.dataset.at = data.at || "";
  box.hidden = false;
  box.focus?.();
}

export function sitePage(meetingId, unitId, canOperate) {
  const view = new MeetingView(meetingId);
  let seat = null;
  const media = mountMedia(meetingId, { micAlways: canOperate, held: canOperate });
  mountContent(media);  // the floor holder shares a screen; any share shown large
  let publishing = false;
  let thumbnail = false;
  let checked = !canOperate;  // a site that may send passes the device check first
  const renderSeat = () => {
    const holding = view.meeting?.floor?.unit_id === unitId;
    $("#my-floor").hidden = !holding;
    const hint = $("#floor-join-hint");
    if (hint) hint.hidden = checked;
    document.body.dataset.hasFloor = holding ? "1" : "0";
    followFloor();
    if (!seat) return;
    $("#my-status").textContent = STATUS_LABEL[seat.status];
    $("#my-status").dataset.status = seat.status;
    const by = seat.muted ? (seat.muted_by || "chair") : "";
    $("#my-mute").textContent = seat.muted ? t(`js.meeting.muted_by_${by}`) : t("js.meeting.unmuted");
    $("#my-mute").dataset.muted = seat.muted ? "1" : "0";
    $("#my-mute").dataset.mutedBy = by;
    // a mute by the chair or the province is theirs to lift: the site raises its hand instead
    $("#unmute-btn").hidden = !seat.muted || !canOperate || by !== "site";
    $("#mute-btn").hidden = seat.muted || !canOperate;
    media.setMicEnabled(!seat.muted);
    const btn = $("#hand-btn");
    if (btn) {
      const open = OPEN.includes(view.meeting?.state);
      btn.disabled = !open || holding;
      btn.textContent = seat.hand_at ? t("js.meeting.lower_hand") : t("js.meeting.raise_hand");
      btn.dataset.hand = seat.hand_at ? "up" : "down";
    }
  };
  const followFloor = () => {
    const holding = view.meeting?.floor?.unit_id === unitId && OPEN.includes(view.meeting?.state);
    if (holding !== publishing) { publishing = holding; media.setPublishing(holding); }
    // while the meeting is live, a site without the floor shows its room in the mosaics (#16)
    const live = view.meeting?.state === "live";
    if (live !== thumbnail) { thumbnail = live; media.setThumbnail(live); }
  };

  // The device check: skipped when this tab already passed it (a reload), else shown first.
  const card = $("#prejoin");
  if (card) {
    const check = new DeviceCheck(card, (choice) => {
      checked = true;
      if (media.publisher) media.stopPublishing();  // new devices: publish again with them
      media.release(choice);
      renderSeat();
    });
    const before = rememberedChoice();
    if (before) {
      checked = true;
      check.joined(before);
      media.release(before);
    } else {
      check.start();
    }
    view.onEnded = () => { check.stopStream(); card.hidden = true; };
  }

  const live = new Live({
    onStatus: connStatus,
    onError: (e) => flash(e.message),
    onSnapshot: (m) => { view.apply(m.data.meeting); seat = m.data.seat; renderSeat(); },
    onEvent: (m) => {
      if (m.kind === "meeting") view.apply(m.data);
      else if (m.kind === "on_air") { view.setOnAir(m.data); return; }
      else if (m.kind === "call") { if (m.data?.unit_id === unitId) showCall(m.data); return; }
      else if (m.kind === "health") { if (m.data?.unit_id === unitId) showLayer(m.data.layer); return; }
      else if (m.kind !== "seat") return;
      else if (!seat || m.data.seq >= seat.seq) seat = m.data;
      renderSeat();
    },
  });
  live.subscribe(`meeting:${meetingId}`);
  // With a bridge, the bridge reports this site connected while its media plays (so a bridge
  // that fails shows as a gap in the roll call); without one, the page's own connection does.
  view.onOpen = async () => {
    const grant = await media.start();
    if (canOperate && !grant?.bridge) live.join(meetingId);
  };
  // The meeting ended: picture and sound stop, and the page points to the minutes.
  view.onClose = () => {
    media.ended();
    const state = view.meeting?.state;
    const box = $("#media-ended");
    if (box) {
      box.hidden = false;
      if (state === "cancelled") {
        box.textContent = t("js.site.cancelled");
      }
    }
    $("#sound-row").hidden = true;
    view.onEnded?.();
  };
  $("#call-ack")?.addEventListener("click", () => { $("#call-notice").hidden = true; });
  $("#hand-btn")?.addEventListener("click", () => {
    const up = !(seat && seat.hand_at);
    live.action(meetingId, up ? "raise_hand" : "lower_hand").catch((e) => flash(e.message));
  });
  $("#unmute-btn").addEventListener("click", () => live.action(meetingId, "unmute").catch((e) => flash(e.message)));
  $("#mute-btn").addEventListener("click", () => live.action(meetingId, "mute").catch((e) => flash(e.message)));
  labelSlideCells($("#site-slide"));
}
