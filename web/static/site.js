// The site page: the programme, this site's seat (roll call, mute, hand) and its KPI slide.
import { $, flash, connStatus, MeetingView, STATUS_LABEL } from "/static/consoles.js";
import { mountMedia } from "/static/media.js";
import { Live } from "/static/live.js";
import { t } from "/static/i18n.js";

export function sitePage(meetingId, unitId, canOperate) {
  const view = new MeetingView(meetingId);
  let seat = null;
  const renderSeat = () => {
    const holding = view.meeting?.floor?.unit_id === unitId;
    $("#my-floor").hidden = !holding;
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
      const open = ["rehearsal", "live"].includes(view.meeting?.state);
      btn.disabled = !open || holding;
      btn.textContent = seat.hand_at ? t("js.meeting.lower_hand") : t("js.meeting.raise_hand");
      btn.dataset.hand = seat.hand_at ? "up" : "down";
    }
  };
  const media = mountMedia(meetingId, { micAlways: canOperate });
  let publishing = false;
  const followFloor = () => {
    const holding = view.meeting?.floor?.unit_id === unitId && ["rehearsal", "live"].includes(view.meeting?.state);
    if (holding !== publishing) { publishing = holding; media.setPublishing(holding); }
  };
  const live = new Live({
    onStatus: connStatus,
    onError: (e) => flash(e.message),
    onSnapshot: (m) => { view.apply(m.data.meeting); seat = m.data.seat; renderSeat(); },
    onEvent: (m) => {
      if (m.kind === "meeting") view.apply(m.data);
      else if (m.kind === "on_air") { view.setOnAir(m.data); return; }
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
  view.onClose = () => media.stop();
  $("#hand-btn")?.addEventListener("click", () => {
    const up = !(seat && seat.hand_at);
    live.action(meetingId, up ? "raise_hand" : "lower_hand").catch((e) => flash(e.message));
  });
  $("#unmute-btn").addEventListener("click", () => live.action(meetingId, "unmute").catch((e) => flash(e.message)));
  $("#mute-btn").addEventListener("click", () => live.action(meetingId, "mute").catch((e) => flash(e.message)));
}
