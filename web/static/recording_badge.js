// "Đang ghi hình" on every console and site page (issue #17): consoles.js MeetingView.apply hands
// each meeting snapshot/event here; the meeting's `recording` field says whether the central bridge
// is writing (active), whether the chair wants it (wanted) and what the chair must be told
// (notice: a full disk). On the chair's console the same place holds the toggle, which posts to
// POST /api/meetings/{id}/recording (docs/protocol.md, "Recording").
import { t } from "/static/i18n.js";

let last = null;

function chairPage() {
  const block = document.getElementById("page-boot");
  try { return block ? JSON.parse(block.textContent).page === "chair" : false; } catch { return false; }
}

async function toggle(root, meetingId, on) {
  const error = root.querySelector(".recording-error");
  error.hidden = true;
  const resp = await fetch(`/api/meetings/${meetingId}/recording`, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": root.dataset.csrf || "" },
    body: JSON.stringify({ on }),
  });
  if (!resp.ok) {
    const body = await resp.json().catch(() => ({}));
    error.textContent = t("js.recording.failed", { message: body.error?.message || resp.status });
    error.hidden = false;
  }
}

export function showRecording(data) {
  const root = document.getElementById("recording");
  if (!root || !data) return;
  last = data;
  const rec = data.recording || { wanted: true, active: false, notice: "" };
  if (!root.dataset.mounted) {
    root.dataset.mounted = "1";
    const badge = document.createElement("span");
    badge.id = "recording-badge";
    badge.className = "badge recording";
    badge.hidden = true;
    const notice = document.createElement("span");
    notice.className = "recording-notice";
    notice.setAttribute("role", "alert");
    const error = document.createElement("span");
    error.className = "recording-error error";
    error.setAttribute("role", "alert");
    error.hidden = true;
    root.append(badge, " ", notice);
    if (chairPage()) {
      const button = document.createElement("button");
      button.type = "button";
      button.id = "recording-toggle";
      button.className = "secondary";
      button.addEventListener("click", () => toggle(root, last.id, !(last.recording?.wanted ?? true)));
      root.append(" ", button);
    }
    root.append(" ", error);
  }
  const badge = root.querySelector("#recording-badge");
  const on = data.state === "live" && rec.active;
  badge.hidden = !on;
  badge.textContent = t("js.recording.badge");
  root.dataset.recording = on ? "1" : "0";
  root.querySelector(".recording-notice").textContent = rec.notice || "";
  const button = root.querySelector("#recording-toggle");
  if (button) {
    button.textContent = rec.wanted ? t("js.recording.stop") : t("js.recording.start");
    button.hidden = ["concluded", "cancelled"].includes(data.state);
    button.title = rec.wanted ? (on ? "" : t("js.recording.waiting")) : t("js.recording.off");
  }
}
