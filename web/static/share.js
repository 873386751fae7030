// Screen sharing on a page that plays the programme (issue #17; docs/protocol.md, "Screen sharing"):
// the MediaLink plays the meeting's content beside the programme (WHEP ?content=1) and, on the
// chair's console and the floor holder's site page, shares a screen or a window (WHIP ?content=1).

import { HttpError } from "/static/media.js";
import { t } from "/static/i18n.js";

// Screen sharing in the media panel: while someone shares, the content large (#content) and the
// speaker small beside it; a "Chia sẻ màn hình" button while this page may publish (the chair; a
// site while it holds the floor); a refusal (403 floor_required) said in the bridge's words.

export function mountContent(link, programme = document.querySelector("#programme")) {
  if (!programme?.parentNode) return;
  const panel = programme.closest(".media-panel") || programme.parentNode;
  if (!document.querySelector('link[href="/static/share.css"]')) {  // after the page's own sheets
    const sheet = Object.assign(document.createElement("link"), { rel: "stylesheet", href: "/static/share.css" });
    document.head.append(sheet);
  }
  const content = document.createElement("video");
  Object.assign(content, { id: "content", autoplay: true, playsInline: true, muted: true, hidden: true });
  content.setAttribute("aria-label", t("js.media.content"));
  programme.before(content);
  const row = document.createElement("div");
  row.className = "share-row";
  const button = document.createElement("button");
  Object.assign(button, { id: "share-screen", type: "button", hidden: true, textContent: t("js.media.share") });
  button.setAttribute("aria-pressed", "false");
  const error = document.createElement("p");
  Object.assign(error, { id: "share-error", hidden: true });
  error.setAttribute("role", "alert");
  row.append(button, error);
  programme.after(row);
  link.contentVideo = content;
  link.onContent = (on) => {
    content.hidden = !on;
    panel.dataset.sharing = on ? "1" : "";  // the content large, the speaker small
  };
  link.onMayShare = (on) => { button.hidden = !on || !navigator.mediaDevices?.getDisplayMedia; };
  link.onSharing = (on) => {
    button.textContent = t(on ? "js.media.share_stop" : "js.media.share");
    button.setAttribute("aria-pressed", on ? "true" : "false");
    if (on) error.hidden = true;
  };
  link.onShareError = (err) => {
    if (err?.name === "NotAllowedError" || err?.name === "AbortError") return;  // the picker was closed
    error.textContent = err instanceof HttpError ? err.message : t("js.media.share_failed");
    error.hidden = false;
  };
  link.share = () => link.shareScreen().catch((err) => { link.onShareError?.(err); throw err; });
  button.addEventListener("click", () => {
    if (link.sharing) { link.stopSharing(); return; }
    link.share().catch(() => {});
  });
}
