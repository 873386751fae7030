// The province console: its communes' roll call, hands and connection health.
import { $, counts, levelSummary, renderHands, rollcallLive, MeetingView, SeatTable } from "/static/consoles.js";
import { SeatStore } from "/static/live.js";
import { t } from "/static/i18n.js";

export function provinceConsole(meetingId, unitCode) {
  const view = new MeetingView(meetingId);
  const store = new SeatStore();
  const live = rollcallLive(view, store, () => render());
  const table = new SeatTable(live, meetingId, { chair: false, store });
  const render = () => {
    const seats = [...store.seats.values()].sort((a, b) => a.code.localeCompare(b.code));
    const c = counts(seats);
    $("#totals").textContent = t("js.meeting.totals", { present: c.present, expected: c.expected, online: c.online, absent: c.absent });
    $("#level-counts").textContent = levelSummary(seats);
    table.render(seats);
    renderHands(store, live, meetingId, false);
  };
  live.subscribe(`meeting:${meetingId}`);
  live.subscribe(`rollcall:${meetingId}:${unitCode}`);
  view.onOpen = () => live.join(meetingId);
}
