// Put a slide on every screen (issue #14): the chair shows the national slide or one province's on
// every site page of the meeting, a province operator its own slide (or one of its communes') on
// its communes' pages; "each site its own slide" ends it. Mounted by boot.js into
// <div id="slide-control"> on the chair and province consoles. Actions go over the live socket
// (show_slide / own_slides: docs/protocol.md, "Pushed slides"); what is shown now comes from the
// meeting topic (snapshot, then slide events), so every console and every site agree.
import { t } from "/static/i18n.js";
import { Live } from "/static/live.js";
import { effectivePush, pushLabel } from "/static/slides.js";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

async function json(url) {
  const resp = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!resp.ok) throw new Error(`${url}: ${resp.status}`);
  return resp.json();
}

// role: "chair" (the whole meeting) or "province" (the operator's own subtree).
export function mountSlideControl(root, meetingId, role = "chair") {
  const topic = `meeting:${meetingId}`;
  const state = el("p", { class: "slide-control-state", id: "slide-control-state", "aria-live": "polite" },
    t("js.slides.control.own"));
  const showOwn = el("button", { type: "button", id: "slide-show-own" },
    t(role === "chair" ? "js.slides.control.show_national" : "js.slides.control.show_province"));
  const picker = el("select", { id: "slide-unit", "aria-label": t("js.slides.control.pick_label") },
    el("option", { value: "" }, t("js.slides.control.pick")));
  const showPicked = el("button", { type: "button", id: "slide-show-unit", class: "secondary" }, t("js.slides.control.show_unit"));
  const release = el("button", { type: "button", id: "slide-release", class: "secondary" }, t("js.slides.control.release"));
  const message = el("p", { class: "error", id: "slide-control-error", role: "alert", hidden: "" });
  root.replaceChildren(el("section", { class: "slide-control", "aria-label": t("js.slides.control.title") },
    el("h3", {}, t("js.slides.control.title")), state,
    el("p", { class: "slide-control-buttons" }, showOwn, " ", picker, " ", showPicked, " ", release), message));

  let pushes = null;  // {seq, pushes, path}
  const show = () => {
    const push = pushes && effectivePush(pushes.pushes, pushes.path);
    state.textContent = push ? pushLabel(push) : t("js.slides.control.own");
    root.dataset.pushed = push ? push.slide.code : "";
  };
  const live = new Live({
    onSnapshot: (msg) => {
      if (msg.topic !== topic) return;
      const s = msg.data.slides || {};
      pushes = { seq: msg.seq, pushes: s.pushes || [], path: s.path || [] };
      show();
    },
    onEvent: (msg) => {
      if (msg.kind !== "slide" || msg.meeting !== meetingId || !pushes || msg.data.seq < pushes.seq) return;
      pushes = { ...pushes, seq: msg.data.seq, pushes: msg.data.pushes };
      show();
    },
  });
  live.subscribe(topic);

  const act = async (action, params = {}) => {
    message.hidden = true;
    try {
      await live.action(meetingId, action, params);
    } catch (e) {
      message.textContent = e.message || t("js.slides.control.failed");
      message.hidden = false;
    }
  };
  showOwn.addEventListener("click", () => act("show_slide"));
  showPicked.addEventListener("click", () => {
    if (!picker.value) { message.textContent = t("js.slides.control.pick_first"); message.hidden = false; return; }
    act("show_slide", { unit: picker.value });
  });
  release.addEventListener("click", () => act("own_slides"));

  // The units one may show: the children of one's own unit (provinces for the chair, communes
  // for a province), by name.
  (async () => {
    const me = await json("/api/me");
    const unit = await json(`/api/units/${encodeURIComponent(me.unit.code)}`);
    const kids = [...unit.children].sort((a, b) => a.name.localeCompare(b.name, "vi"));
    picker.append(...kids.map((k) => el("option", { value: k.code }, `${k.name} (${k.code})`)));
  })().catch(() => { picker.disabled = true; showPicked.disabled = true; });
  return live;
}
