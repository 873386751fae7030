// The consoles' mosaic (issue #16): sites as a page of live thumbnails — the chair's provinces, a
// province's communes — each its low rendition through a preview token for that site alone. Only
// the visible page plays: leaving a page closes its peers. A site that sends no picture shows
// "Chưa có hình" and is asked again now and then; a click opens the preview (larger, with sound)
// with "Trao quyền phát biểu" beside it. Also the badges of the rendition a site receives
// (``layer`` of the health its bridge reports): "Hình thấp", "Chỉ âm thanh".
import { el } from "/static/consoles.js";
import { HttpError, fetchGrant, hangUp, negotiate } from "/static/media.js";
import { t, locale } from "/static/i18n.js";

const NONE_RETRY_MS = 8000;  // a site without a picture (404 no_thumbnail): asked again after this
const FAILED_RETRY_MS = 4000;
const STALL_CHECK_MS = 5000;  // a thumbnail whose frames stopped for two checks is opened again
const MAX_NUMBERED_PAGES = 8;
const num = (n) => Number(n).toLocaleString(locale);

async function framesDecoded(pc) {
  let frames = 0;
  (await pc.getStats()).forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded || 0; });
  return frames;
}

// One site's picture — a mosaic's thumbnail: its low rendition — or, with ``sound``, its picture and
// microphone (the preview before giving it the floor), with the preview token the server grants for
// that site alone (``GET /api/meetings/{id}/media?preview=<code>``). Rejects with an HttpError: 404
// ``no_thumbnail`` when the site sends no picture there, 403 when the site is out of reach.
// ``onEnd`` is called when the bridge ends it (the site stopped sending); ``close()`` ends it here.
export async function playSite(meetingId, code, video, { sound = false, onEnd = null } = {}) {
  const g = await fetchGrant(meetingId, code);
  if (!g.bridge) throw new HttpError(t("js.media.status.none"), 404, "no_bridge");
  const pc = new RTCPeerConnection({ iceServers: g.ice_servers || [] });
  const stream = new MediaStream();
  const handle = {
    pc, location: null, token: g.token, closed: false,
    close() {
      if (handle.closed) return;
      handle.closed = true;
      hangUp(handle.location, handle.token);
      pc.close();
      if (video.srcObject === stream) video.srcObject = null;
    },
  };
  const ended = () => { if (!handle.closed) { handle.close(); onEnd?.(); } };
  pc.addTransceiver("video", { direction: "recvonly" });
  if (sound) pc.addTransceiver("audio", { direction: "recvonly" });
  pc.addEventListener("track", (e) => {
    stream.addTrack(e.track);
    video.srcObject = stream;
    video.play?.().catch(() => {});
  });
  pc.addEventListener("connectionstatechange", () => { if (["failed", "closed"].includes(pc.connectionState)) ended(); });
  try {
    handle.location = await negotiate(pc, g.whep, g.token);
  } catch (err) {
    handle.close();
    throw err;
  }
  const dtls = pc.getReceivers()[0]?.transport;
  dtls?.addEventListener("statechange", () => { if (["closed", "failed"].includes(dtls.state)) ended(); });
  return handle;
}

export class Mosaic {
  // grid: the <ol> of tiles; nav: where the page buttons go; perPage: tiles per page;
  // onPick(site): a tile was clicked. Sites are {code, name, unit_id}.
  constructor(meetingId, { grid, nav, perPage = 9, onPick = null }) {
    Object.assign(this, { meetingId, grid, nav, perPage, onPick });
    this.sites = [];
    this.key = "";
    this.pageNo = 0;
    this.tiles = new Map();  // code → tile of the visible page
    this.active = false;
    this.stallTimer = null;
  }

  // The sites (seat rows) in the caller's order; shown connected ones first (only they can send a
  // picture), each group in that order. Cheap when nothing changed (called at every roll-call render).
  setSites(seats) {
    const sites = [...seats].sort((a, b) => Number(Boolean(b.online)) - Number(Boolean(a.online)))
      .map((s) => ({ code: s.code, name: s.name, unit_id: s.unit_id }));
    const key = sites.map((s) => `${s.code}\t${s.name}`).join("\n");
    if (key === this.key) return;
    this.key = key;
    this.sites = sites;
    if (this.active) this.render();
  }

  show(on) {
    if (on === this.active) return;
    this.active = on;
    clearInterval(this.stallTimer);
    if (on) {
      this.render();
      this.stallTimer = setInterval(() => this.checkStalls(), STALL_CHECK_MS);
    } else {
      for (const tile of this.tiles.values()) this.closeTile(tile);
      this.tiles.clear();
      this.grid.replaceChildren();
    }
  }

  pages() { return Math.max(1, Math.ceil(this.sites.length / this.perPage)); }

  goTo(n) {
    this.pageNo = Math.min(Math.max(0, n), this.pages() - 1);
    this.render();
  }

  render() {
    this.pageNo = Math.min(this.pageNo, this.pages() - 1);
    const visible = this.sites.slice(this.pageNo * this.perPage, (this.pageNo + 1) * this.perPage);
    const codes = new Set(visible.map((s) => s.code));
    for (const [code, tile] of this.tiles) {
      if (!codes.has(code)) { this.closeTile(tile); this.tiles.delete(code); }
    }
    const nodes = visible.map((s) => {
      let tile = this.tiles.get(s.code);
      if (!tile) {
        tile = this.makeTile(s);
        this.tiles.set(s.code, tile);
        this.start(tile);
      }
      tile.site = s;
      tile.name.textContent = s.name;
      return tile.node;
    });
    const same = nodes.length === this.grid.children.length && nodes.every((n, i) => this.grid.children[i] === n);
    if (!same) {
      this.grid.replaceChildren(...nodes);
      // a <video> taken out of the document pauses: the ones moved play on
      for (const tile of this.tiles.values()) tile.video.play?.().catch(() => {});
    }
    // a few sites fill the stage (2×2 for four), a full page keeps its grid (--cols × --rows)
    const side = Math.max(1, Math.ceil(Math.sqrt(Math.min(Math.max(visible.length, 1), this.perPage))));
    this.grid.style.setProperty("--cols", String(side));
    this.grid.style.setProperty("--rows", String(Math.max(1, Math.ceil(visible.length / side))));
    this.grid.dataset.empty = visible.length ? "0" : "1";
    if (!visible.length) this.grid.replaceChildren(el("li", { class: "mosaic-empty muted" }, t("js.mosaic.empty")));
    this.renderNav();
  }

  renderNav() {
    const pages = this.pages();
    const current = this.pageNo;
    const button = (label, n, attrs = {}) => el("button", { type: "button", class: "small secondary", "data-page": String(n + 1),
      onclick: () => this.goTo(n), ...attrs }, label);
    const kids = [];
    if (pages > 1) {
      kids.push(button(t("js.mosaic.prev"), current - 1, { disabled: current === 0, "data-page": "prev" }));
      if (pages <= MAX_NUMBERED_PAGES) {
        for (let n = 0; n < pages; n++) {
          kids.push(button(num(n + 1), n, { "aria-label": t("js.mosaic.page_n", { n: num(n + 1) }),
            "aria-current": n === current ? "page" : false }));
        }
      }
      kids.push(button(t("js.mosaic.next"), current + 1, { disabled: current === pages - 1, "data-page": "next" }));
    }
    kids.push(el("span", { class: "muted mosaic-page", "data-current": String(current + 1) },
      t("js.mosaic.page", { page: num(current + 1), pages: num(pages) })));
    this.nav.replaceChildren(...kids);
  }

  makeTile(site) {
    const video = el("video", { muted: true, autoplay: true, playsinline: true });
    video.muted = true;
    const name = el("span", { class: "tile-name" }, site.name);
    const note = el("span", { class: "tile-note" }, t("js.mosaic.loading"));
    const open = el("button", { type: "button", class: "tile-open", "aria-label": t("js.mosaic.open", { name: site.name }),
      onclick: () => this.onPick?.(tile.site) }, video, note, name);
    const node = el("li", { class: "tile", "data-unit": site.code, "data-thumb": "loading" }, open);
    const tile = { site, node, video, name, note, handle: null, timer: null, closed: false, frames: -1, still: 0 };
    video.addEventListener("playing", () => { if (tile.handle) this.state(tile, "playing"); });
    return tile;
  }

  state(tile, key, text = "") {
    tile.node.dataset.thumb = key;
    tile.note.textContent = text;
  }

  async start(tile) {
    clearTimeout(tile.timer);
    if (!this.active || tile.closed) return;
    this.state(tile, "loading", t("js.mosaic.loading"));
    tile.frames = -1;
    tile.still = 0;
    try {
      const handle = await playSite(this.meetingId, tile.site.code, tile.video,
        { onEnd: () => { tile.handle = null; this.later(tile, FAILED_RETRY_MS); } });
      if (tile.closed || !this.active) { handle.close(); return; }
      tile.handle = handle;
      this.state(tile, "connected");
    } catch (err) {
      if (tile.closed) return;
      const none = err instanceof HttpError && err.status === 404;
      if (none) this.state(tile, "none", t("js.mosaic.no_picture"));
      else this.state(tile, "failed", err instanceof HttpError && err.status === 403 ? err.message : t("js.mosaic.failed"));
      this.later(tile, none ? NONE_RETRY_MS : FAILED_RETRY_MS);
    }
  }

  later(tile, ms) {
    clearTimeout(tile.timer);
    if (!tile.closed && this.active) tile.timer = setTimeout(() => this.start(tile), ms);
  }

  // A thumbnail whose site stopped sending (its publication replaced, its link gone) is asked again.
  async checkStalls() {
    for (const tile of this.tiles.values()) {
      const pc = tile.handle?.pc;
      if (!pc || tile.closed) continue;
      const frames = await framesDecoded(pc).catch(() => -1);
      tile.still = frames === tile.frames ? tile.still + 1 : 0;
      tile.frames = frames;
      if (tile.still >= 2 && tile.handle?.pc === pc) {
        tile.handle.close();
        tile.handle = null;
        this.start(tile);
      }
    }
  }

  closeTile(tile) {
    tile.closed = true;
    clearTimeout(tile.timer);
    tile.handle?.close();
    tile.handle = null;
  }
}

// The preview of one site: its picture larger, with its sound, and "Trao quyền phát biểu" beside it.
// box holds: video.preview-video, .preview-title, .preview-status, .preview-grant, .preview-close.
export class Preview {
  constructor(meetingId, box, { grant, onClose = null }) {
    Object.assign(this, { meetingId, box, grant, onClose });
    this.video = box.querySelector("video");
    this.site = null;
    this.handle = null;
    box.querySelector(".preview-close").addEventListener("click", () => this.close());
    box.querySelector(".preview-grant").addEventListener("click", () => this.giveFloor());
    box.addEventListener("keydown", (e) => { if (e.key === "Escape") this.close(); });
  }

  status(key, text) {
    const node = this.box.querySelector(".preview-status");
    node.textContent = text;
    this.box.dataset.preview = key;
  }

  // Open (or, ``again``, reopen after the site's publication changed or stopped) the preview of ``site``.
  async open(site, again = false) {
    if (!again) {
      this.close(false);
      this.site = site;
      this.box.hidden = false;
      this.box.dataset.unit = site.code;
      this.box.querySelector(".preview-title").textContent = t("js.mosaic.preview_of", { name: site.name });
      const granted = this.box.querySelector(".preview-granted");
      if (granted) granted.hidden = true;
      this.box.querySelector(".preview-close").focus();
      this.video.muted = false;
    }
    clearTimeout(this.timer);
    if (this.site !== site) return;
    this.status("loading", t("js.mosaic.preview_loading"));
    const retry = (ms) => { clearTimeout(this.timer); this.timer = setTimeout(() => this.open(site, true), ms); };
    try {
      const handle = await playSite(this.meetingId, site.code, this.video, { sound: true,
        onEnd: () => { if (this.handle === handle) { this.handle = null; retry(1000); } } });
      if (this.site !== site) { handle.close(); return; }
      this.handle = handle;
      this.status("playing", t("js.mosaic.preview_playing"));
    } catch (err) {
      if (this.site !== site) return;
      const none = err instanceof HttpError && err.status === 404;
      this.status(none ? "none" : "failed", none ? t("js.mosaic.preview_none") : err.message || t("js.mosaic.failed"));
      if (!(err instanceof HttpError && err.status === 403)) retry(none ? NONE_RETRY_MS / 2 : FAILED_RETRY_MS);
    }
  }

  async giveFloor() {
    const site = this.site;
    if (!site || !this.grant) return;
    try {
      await this.grant(site);
    } catch {
      return;  // the console shows why (flash)
    }
    const granted = this.box.querySelector(".preview-granted");
    if (granted && this.site === site) {
      granted.textContent = t("js.mosaic.granted", { name: site.name });
      granted.hidden = false;
    }
  }

  close(notify = true) {
    clearTimeout(this.timer);
    this.handle?.close();
    this.handle = null;
    this.site = null;
    this.video.srcObject = null;
    if (!this.box.hidden) {
      this.box.hidden = true;
      if (notify) this.onClose?.();
    }
  }
}

// The rendition a site receives now, as a badge, when it is not the high one.
export function layerBadge(h) {
  const layer = h && h.connected !== false ? h.layer : null;
  if (layer !== "low" && layer !== "audio") return "";
  return el("span", { class: `badge layer layer-${layer}`, "data-layer": layer, title: t(`js.mosaic.layer_${layer}_title`) },
    t(`js.mosaic.layer_${layer}`));
}

// How many of ``seats`` receive the low rendition, or sound only: badges for a province's row.
export function layerMarks(store, seats) {
  const n = { low: 0, audio: 0 };
  for (const s of seats) {
    const h = store.health.get(s.unit_id);
    if (s.online && h && h.connected !== false && h.layer in n) n[h.layer] += 1;
  }
  return ["low", "audio"].filter((k) => n[k]).map((k) => el("span", { class: `badge layer layer-${k}`, "data-layer": k,
    "data-count": String(n[k]), title: t(`js.mosaic.prov_${k}_title`, { n: num(n[k]) }) }, t(`js.mosaic.prov_${k}`, { n: num(n[k]) })));
}

// A view switch (role=tablist): ``views`` maps each tab button to its panel; ``onSelect(name)``.
export function viewSwitch(views, onSelect) {
  const select = (name) => {
    for (const [key, { tab, panel }] of Object.entries(views)) {
      const on = key === name;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      tab.tabIndex = on ? 0 : -1;
      panel.hidden = !on;
    }
    onSelect(name);
  };
  const names = Object.keys(views);
  for (const [key, { tab }] of Object.entries(views)) {
    tab.addEventListener("click", () => select(key));
    tab.disabled = false;  // the page serves the tabs disabled: a click before this script ran would be lost
    tab.addEventListener("keydown", (e) => {
      if (!["ArrowLeft", "ArrowRight"].includes(e.key)) return;
      const next = names[(names.indexOf(key) + (e.key === "ArrowRight" ? 1 : names.length - 1)) % names.length];
      select(next);
      views[next].tab.focus();
    });
  }
  return select;
}
