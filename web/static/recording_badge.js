// "Đang ghi hình" on every console and site page (issue #17): consoles.js MeetingView.apply hands
// each meeting snapshot/event here; the meeting's `recording` field says whether the central bridge
// is writing (active), whether the chair wants it (wanted) and what the chair must be told
// (notice: a full disk, a bridge lost). On the chair's console the same place holds the toggle,
// which posts to POST /api/meetings/{id}/recording (docs/protocol.md, "Recording"), and a checkbox
// per provincial bridge (GET /api/meetings/{id}/recording lists them): that bridge records too.
import { t } from "/static/i18n.js";

let last = null;

function chairPage() {
  const block = document.getElementById("page-boot");
  try { return block ? JSON.parse(block.textContent).page === "chair" : false; } catch { return false; }
}

async function toggle(root, meetingId, on, bridge) {
  const error = root.querySelector(".recording-error");
  error.hidden = true;
  const resp = await fetch(`/api/meetings/${meetingId}/recording`, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": root.dataset.csrf || "" },
    body: JSON.stringify(bridge ? { on, bridge } : { on }),
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
      const provinces = document.createElement("span");
      provinces.id = "recording-bridges";
      root.append(" ", button, " ", provinces);
      mountBridges(root, provinces, data.id);
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
  showBridges(root, rec, data.state);
}

async function mountBridges(root, holder, meetingId) {
  const resp = await fetch(`/api/meetings/${meetingId}/recording`, { credentials: "same-origin" });
  const body = resp.ok ? await resp.json().catch(() => ({})) : {};
  if (!body.bridges?.length) return;
  holder.append(t("js.recording.bridges"), " ");
  for (const b of body.bridges) {
    const label = document.createElement("label");
    label.className = "check";
    label.style.display = "inline-flex";
    label.style.gap = "4px";
    const box = document.createElement("input");
    box.type = "checkbox";
    box.dataset.bridge = b.code;
    box.addEventListener("change", () => toggle(root, last.id, box.checked, b.code));
    label.append(box, " ", b.name);
    holder.append(label, " ");
  }
  showBridges(root, last.recording || {}, last.state);
}

function showBridges(root, rec, state) {
  for (const box of root.querySelectorAll("#recording-bridges input[data-bridge]")) {
    box.checked = (rec.bridges || []).includes(box.dataset.bridge);
    box.disabled = !rec.wanted || ["concluded", "cancelled"].includes(state);
  }
}
