// Pictures and sound of a meeting, through the bridges (docs/protocol.md, "Media"):
// play the programme from the site's bridge over WHEP, publish camera and microphone over WHIP
// when allowed (the chair always; a site while it holds the floor), and come back by itself —
// a new peer connection with a fresh join token — after a drop or a bridge restart.
// A camera goes out twice (issue #16): a high rendition and a low one (its clone, scaled down by 2)
// for weak links; a site without the floor sends its microphone and, while the meeting is live,
// only the low rendition (``?thumbnail=1``) for the consoles' mosaics (web/static/mosaic.js plays them).

import { t } from "/static/i18n.js";

const LABEL = {
  idle: t("js.media.status.idle"),
  connecting: t("js.media.status.connecting"),
  connected: t("js.media.status.connected"),
  retrying: t("js.media.status.retrying"),
  none: t("js.media.status.none"),
  closed: t("js.media.status.closed"),
  denied: t("js.media.status.denied"),
};
const RETRY_MS = [500, 1000, 2000, 3000];
// The two renditions of a camera (docs/protocol.md): the first video m-line high, the second low.
const HIGH = { maxBitrate: 800_000 };
const LOW = { scaleResolutionDownBy: 2, maxBitrate: 150_000 };
const THUMB_REFUSED_MS = 30_000;  // a bridge that refused the thumbnail is asked again after this
const DISCONNECTED_GRACE_MS = 2000;
const ICE_GATHER_MS = 1500;
const CONTENT_IDLE_MS = 3000;  // no frame of the shared screen for this long: nobody shares any more

export class HttpError extends Error {
  constructor(message, status, code) { super(message); this.status = status; this.code = code; }
}

export async function fetchGrant(meetingId, preview = null) {
  const query = preview ? `?preview=${encodeURIComponent(preview)}` : "";
  const resp = await fetch(`/api/meetings/${meetingId}/media${query}`, { credentials: "same-origin", cache: "no-store" });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new HttpError(body.error?.message || `HTTP ${resp.status}`, resp.status, body.error?.code);
  return body;
}

function iceGathered(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") { pc.removeEventListener("icegatheringstatechange", done); resolve(); } };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, ms);  // host candidates are enough on a LAN; don't wait for slow STUN
  });
}

// One offer/answer with a WHIP or WHEP endpoint; returns the session URL to DELETE.
export async function negotiate(pc, url, token) {
  await pc.setLocalDescription(await pc.createOffer());
  await iceGathered(pc, ICE_GATHER_MS);
  const resp = await fetch(url, {
    method: "POST", body: pc.localDescription.sdp,
    headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${token}` },
  });
  if (resp.status !== 201) {
    const body = await resp.json().catch(() => ({}));
    throw new HttpError(body.error?.message || `HTTP ${resp.status}`, resp.status, body.error?.code);
  }
  const location = new URL(resp.headers.get("Location") || "", url).href;
  await pc.setRemoteDescription({ type: "answer", sdp: await resp.text() });
  return location;
}

export function hangUp(location, token) {
  if (location) fetch(location, { method: "DELETE", headers: { Authorization: `Bearer ${token}` } }).catch(() => {});
}

// Whether every track ``pc`` sends has sent packets (its encoders started).
async function sendsEverything(pc) {
  try {
    const tracks = pc.getSenders().filter((s) => s.track).length;
    let sending = 0;
    (await pc.getStats()).forEach((r) => { if (r.type === "outbound-rtp" && r.packetsSent > 0) sending += 1; });
    return sending >= tracks;
  } catch {
    return true;  // closed meanwhile: nothing to wait for
  }
}

function withQuery(url, key, value) {
  const u = new URL(url, location.href);
  u.searchParams.set(key, value);
  return u.href;
}

// A device that is missing or busy (no camera on this machine): the page can still send sound.
const DEVICE_MISSING = ["NotFoundError", "NotReadableError", "OverconstrainedError"];

export class MediaLink {
  // video: the <video> that shows the programme; audioBox: where one <audio> per incoming sound
  // track goes; onStatus(key, label); publishVideo: a <video> previewing what this site sends.
  // micAlways: a site sends its microphone even without the floor (its bridge reads who speaks;
  // the sound reaches nobody unless the site holds the floor and is not muted), and with it, while
  // ``setThumbnail(true)`` (the meeting is live), its camera's low rendition for the mosaics.
  // held: publish nothing (not even with the floor) until ``release()`` — the site page's check of
  // camera and microphone comes first; ``release(devices)`` names the devices chosen there.
  constructor({ meetingId, video, audioBox, onStatus, preview = null, alwaysPublish = false, onAudioBlocked = null,
    micAlways = false, held = false }) {
    Object.assign(this, { meetingId, video, audioBox, onStatus, preview, alwaysPublish, onAudioBlocked, micAlways, held });
    this.devices = { audio: null, video: null };
    this.micEnabled = true;
    this.grant = null;
    this.player = null;
    this.publisher = null;  // {pc, location, token, media, extra, mode: "full" | "thumb" | "mic", video}
    this.wantPublish = alwaysPublish;
    this.thumbnail = false;
    this.thumbRefusedAt = 0;
    this.noCamera = false;  // the last capture found no camera: no thumbnail until a device changes
    navigator.mediaDevices?.addEventListener?.("devicechange", () => {
      if (!this.noCamera) return;
      this.noCamera = false;
      this.sync();
    });
    this.generation = 0;  // grows at every teardown: a publication started before it is dropped
    this.syncing = null;
    this.stopped = false;
    this.attempt = 0;
    this.timer = null;
    this.status = "idle";
  }

  setStatus(key) {
    this.status = key;
    this.onStatus?.(key, LABEL[key] || key);
  }

  // Resolves with the first grant: {bridge: null} means this meeting has no media here.
  async start() {
    this.stopped = false;
    return this.connect();
  }

  async connect() {
    clearTimeout(this.timer);
    if (this.stopped) return this.grant;
    this.setStatus(this.attempt ? "retrying" : "connecting");
    try {
      this.grant = await fetchGrant(this.meetingId);
      if (!this.grant.bridge) { this.setStatus("none"); return this.grant; }
      await this.play();
      this.onMayShare?.(this.wantPublish);
      this.playContent();  // beside, not awaited: the programme and the publication never wait for it
      if (this.wantedMode() === "full") await this.publish("full");
      else await this.sync();  // the microphone (and thumbnail), if wanted; none: still play
      this.attempt = 0;
    } catch (err) {
      if (err instanceof HttpError && err.code === "wrong_state") { this.setStatus("closed"); this.retry(5000); }
      else if (err?.name === "NotAllowedError") { this.setStatus("denied"); }
      else this.retry();
    }
    return this.grant;
  }

  retry(delay) {
    if (this.stopped) return;
    this.teardown();
    const wait = delay ?? RETRY_MS[Math.min(this.attempt, RETRY_MS.length - 1)];
    this.attempt += 1;
    this.setStatus("retrying");
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), wait);
  }

  watch(pc, which) {
    let grace = null;
    pc.addEventListener("connectionstatechange", () => {
      const st = pc.connectionState;
      if (pc !== this[which]?.pc) return;  // an old connection being closed
      if (st === "connected") {
        clearTimeout(grace);
        if (which === "player") this.setStatus("connected");
      } else if (st === "failed" || st === "closed") {
        this.retry();
      } else if (st === "disconnected") {
        clearTimeout(grace);
        grace = setTimeout(() => { if (pc.connectionState !== "connected") this.retry(); }, DISCONNECTED_GRACE_MS);
      }
    });
  }

  // The bridge ended this connection (it closes with a DTLS close_notify: the meeting's video codec
  // was pinned to another than this player's, or the session was ended there). Chromium keeps
  // connectionState "connected" until ICE consent fails, many seconds later: the DTLS transport
  // is what tells at once.
  watchTransport(pc, which) {
    const dtls = pc.getReceivers()[0]?.transport || pc.getSenders()[0]?.transport;
    dtls?.addEventListener("statechange", () => {
      if (pc === this[which]?.pc && (dtls.state === "closed" || dtls.state === "failed")) this.retry();
    });
  }

  async play() {
    const g = this.grant;
    const pc = new RTCPeerConnection({ iceServers: g.ice_servers || [] });
    this.player = { pc, location: null, token: g.token };
    this.watch(pc, "player");
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });  // the chair's sound
    pc.addTransceiver("audio", { direction: "recvonly" });  // the floor holder's sound
    const stream = new MediaStream();
    this.audioBox?.replaceChildren();
    pc.addEventListener("track", (e) => {
      if (e.track.kind === "video") {
        stream.addTrack(e.track);
        this.video.srcObject = stream;
        this.video.play?.().catch(() => {});
      } else if (this.audioBox) {
        const audio = document.createElement("audio");
        audio.autoplay = true;
        audio.srcObject = new MediaStream([e.track]);
        audio.dataset.mid = e.transceiver?.mid ?? "";
        this.audioBox.append(audio);
        audio.play?.().catch(() => this.onAudioBlocked?.());
      }
    });
    this.player.location = await negotiate(pc, g.whep, g.token);
    this.watchTransport(pc, "player");
  }

  // What this page should be sending now: "full" (both renditions and the microphone: the chair,
  // the floor holder), "thumb" (microphone and the low rendition: a site without the floor in a
  // live meeting), "mic" (the microphone alone), or null.
  wantedMode() {
    if (this.held || this.stopped) return null;
    if (this.wantPublish) return "full";
    if (!this.micAlways) return null;
    const refused = Date.now() - this.thumbRefusedAt < THUMB_REFUSED_MS;
    return this.thumbnail && !refused && !this.noCamera ? "thumb" : "mic";
  }

  // The floor came to this site (or went): start or stop sending both renditions.
  async setPublishing(on) {
    this.wantPublish = on || this.alwaysPublish;
    this.onMayShare?.(this.wantPublish);
    if (!this.wantPublish) this.stopSharing();  // the bridge ends the share anyway when the floor goes
    return this.sync();
  }

  // The meeting went live (or left it): a site without the floor sends its low rendition too.
  async setThumbnail(on) {
    this.thumbnail = on;
    return this.sync();
  }

  // Bring the publication to the wanted mode, one change at a time. The new publication replaces
  // the old one make before break: the bridge ends the old publication once the new one carries
  // media, so the floor is heard without a gap.
  async sync() {
    if (this.syncing) { this.again = true; return this.syncing; }
    this.syncing = (async () => {
      do {
        this.again = false;
        await this.syncOnce();
      } while (this.again);
    })().finally(() => { this.syncing = null; });
    return this.syncing;
  }

  async syncOnce() {
    if (this.held || this.stopped || !this.grant?.bridge || !this.player) return;
    const want = this.wantedMode();
    const old = this.publisher;
    if ((old?.mode ?? null) === want) return;
    if (!want) { this.stopPublishing(); return; }
    clearTimeout(this.syncTimer);
    try {
      this.grant = await fetchGrant(this.meetingId);  // a fresh token (may_publish true with the floor)
      if (want === "full") await this.publish("full", old);
      else await this.publishQuietly(want, old);
    } catch (err) {
      if (err?.name === "NotAllowedError") { this.setStatus("denied"); return; }
    } finally {
      if (old && this.publisher !== old) this.retire(old, this.publisher?.pc ?? null);
    }
    // not there yet (a refusal, a network error): try again in a moment
    if ((this.publisher?.mode ?? null) !== this.wantedMode()) this.syncTimer = setTimeout(() => this.sync(), 1000);
  }

  // The site's check of camera and microphone is done: send with these devices from now on (and
  // again after a drop), starting at once when the site holds the floor or always sends its microphone.
  async release(devices = {}) {
    this.devices = { audio: devices.audio || null, video: devices.video || null };
    this.held = false;
    this.noCamera = false;
    if (this.stopped || !this.grant?.bridge) return;
    await this.sync();
  }

  // The chair (or the province) muted this site: the microphone track stops too. The bridge drops
  // a muted site's sound whatever the page does; this is so the site knows and sends nothing.
  setMicEnabled(on) {
    this.micEnabled = on;
    for (const t of this.publisher?.media.getAudioTracks() || []) t.enabled = on;
  }

  // A thumbnail the bridge refuses (an older bridge, say) leaves the microphone alone; no
  // microphone at all is no reason to stop playing.
  async publishQuietly(mode, replacing = null) {
    try {
      await this.publish(mode, replacing);
    } catch (err) {
      if (mode !== "thumb") return;
      if (err instanceof HttpError) {
        this.thumbRefusedAt = Date.now();
        setTimeout(() => this.sync(), THUMB_REFUSED_MS + 100);
      }
      if (replacing?.mode === "mic") return;  // the microphone already goes out: keep it
      await this.publish("mic", replacing).catch(() => {});
    }
  }

  // Camera (unless ``mode`` is "mic") and microphone, from the chosen devices, else the default
  // ones (the chosen one was unplugged); a page without a camera sends its microphone alone.
  async capture(mode) {
    const ask = (withVideo) => {
      const { audio: mic, video: cam } = this.devices;
      return navigator.mediaDevices.getUserMedia({
        video: withVideo ? { width: 640, height: 480, ...(cam ? { deviceId: { exact: cam } } : {}) } : false,
        audio: mic ? { deviceId: { exact: mic } } : true });
    };
    const withVideo = mode !== "mic";
    try {
      const media = await ask(withVideo).catch((err) => {
        // the chosen device is gone (unplugged): the default ones rather than no picture and sound
        if (!["OverconstrainedError", "NotFoundError"].includes(err?.name) || !(this.devices.audio || this.devices.video)) throw err;
        this.devices = { audio: null, video: null };
        return ask(withVideo);
      });
      if (withVideo) this.noCamera = false;
      return media;
    } catch (err) {
      if (!withVideo || !DEVICE_MISSING.includes(err?.name)) throw err;
      this.noCamera = true;
      return ask(false);
    }
  }

  // Send in ``mode`` ("full": microphone, high and low renditions; "thumb": microphone and the low
  // one, ``?thumbnail=1``; "mic"). ``replacing``: the publication this one replaces (the caller
  // retires it); anything else current means another call published meanwhile.
  async publish(mode = "full", replacing = null) {
    if (this.publisher !== replacing) return;
    const generation = this.generation;
    const g = this.grant;
    const media = await this.capture(mode);
    const cam = media.getVideoTracks()[0];
    const extra = [];
    const release = () => { for (const t of [...media.getTracks(), ...extra]) t.stop(); };
    if (generation !== this.generation || this.publisher !== replacing) { release(); return; }
    if (mode === "thumb" && !cam) mode = "mic";  // no camera: the microphone alone, as before #16
    for (const t of media.getAudioTracks()) t.enabled = this.micEnabled;
    const pc = new RTCPeerConnection({ iceServers: g.ice_servers || [] });
    const publication = { pc, location: null, token: g.token, media, extra, mode, video: mode === "full" };
    this.publisher = publication;
    this.watch(pc, "publisher");
    const send = (track, encoding) => pc.addTransceiver(track, { direction: "sendonly", streams: [media],
      ...(encoding ? { sendEncodings: [encoding] } : {}) });
    for (const track of media.getAudioTracks()) send(track, null);
    if (cam && mode === "full") {
      send(cam, HIGH);  // the first video m-line: the high rendition
      const low = cam.clone();
      extra.push(low);
      send(low, LOW);  // the second, right after it: the low one
    } else if (cam && mode === "thumb") {
      send(cam, LOW);
    }
    const showOwn = (m) => {
      if (!this.preview) return;
      this.preview.srcObject = m;
      this.preview.muted = true;
      if (m) this.preview.play?.().catch(() => {});
    };
    showOwn(cam ? media : null);
    try {
      publication.location = await negotiate(pc, mode === "thumb" ? withQuery(g.whip, "thumbnail", "1") : g.whip, g.token);
    } catch (err) {
      if (this.publisher === publication) this.publisher = replacing;
      pc.close();
      release();
      showOwn(replacing?.media.getVideoTracks().length ? replacing.media : null);
      throw err;
    }
    if (this.publisher !== publication) {  // torn down meanwhile (a drop, the meeting's end)
      hangUp(publication.location, publication.token);
      pc.close();
      release();
      return;
    }
    this.watchTransport(pc, "publisher");
  }

  // End a replaced publication once its successor sends — connected, and every one of its
  // microphone and cameras has sent packets (a busy machine starts new encoders late) — and a
  // moment more, for the bridge to take each new source at its first packet (the microphone at
  // its first of voice). Never later than 5 s: a successor that fails ends it all the same.
  retire(old, successor) {
    let ended = false;
    const finish = () => {
      if (ended) return;
      ended = true;
      setTimeout(() => {
        hangUp(old.location, old.token);
        old.pc.close();
        for (const t of [...old.media.getTracks(), ...(old.extra || [])]) t.stop();
      }, 1000);
    };
    setTimeout(finish, 5000);  // never keep the old one longer than this
    if (!successor) { finish(); return; }
    const check = async () => {
      if (ended) return;
      if (["failed", "closed"].includes(successor.connectionState)) { finish(); return; }
      if (successor.connectionState === "connected" && await sendsEverything(successor)) { finish(); return; }
      setTimeout(check, 200);
    };
    check();
  }

  stopPublishing() {
    const pub = this.publisher;
    this.publisher = null;
    if (!pub) return;
    hangUp(pub.location, pub.token);
    pub.pc.close();
    for (const t of [...pub.media.getTracks(), ...(pub.extra || [])]) t.stop();
    if (this.preview) this.preview.srcObject = null;
  }

  teardown() {
    this.generation += 1;
    const player = this.player;
    this.player = null;
    if (player) { hangUp(player.location, player.token); player.pc.close(); }
    this.stopPublishing();
    this.stopContent();
  }

  // Screen sharing (docs/protocol.md, "Screen sharing"): only used by a page that has a
  // ``contentVideo`` (the content shown large, the programme small while someone shares).
  async playContent() {
    const g = this.grant;
    if (!this.contentVideo || !g?.bridge || this.contentPlayer) return;
    const pc = new RTCPeerConnection({ iceServers: g.ice_servers || [] });
    this.contentPlayer = { pc, location: null, token: g.token };
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addEventListener("track", (e) => {
      this.contentVideo.srcObject = new MediaStream([e.track]);
      this.contentVideo.play?.().catch(() => {});
    });
    try {
      this.contentPlayer.location = await negotiate(pc, `${g.whep}?content=1`, g.token);
    } catch {
      pc.close();
      if (this.contentPlayer?.pc === pc) this.contentPlayer = null;
      setTimeout(() => { if (!this.stopped && this.player) this.playContent(); }, 3000);  // try again
      return;
    }
    // Someone shares while frames arrive (the bridge sends nothing while nobody shares); a still
    // screen sends few frames: the content stays shown until none came for CONTENT_IDLE_MS.
    let last = 0;
    let lastAt = 0;
    let shown = false;
    const player = this.contentPlayer;
    player.timer = setInterval(async () => {
      const stats = await pc.getStats().catch(() => null);
      let frames = 0;
      stats?.forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded || 0; });
      if (frames > last) lastAt = Date.now();
      last = frames;
      const on = lastAt > 0 && Date.now() - lastAt < CONTENT_IDLE_MS;
      if (on !== shown) { shown = on; this.onContent?.(on); }
    }, 500);
  }

  // The chair or the floor holder shares a screen or a window (getDisplayMedia); the bridge
  // refuses anyone else (403 floor_required). Ends by itself when the browser's "stop sharing" is used.
  async shareScreen() {
    if (this.sharing || !this.grant?.bridge) return;
    const media = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    let grant;
    try {
      grant = await fetchGrant(this.meetingId);  // a fresh token
    } catch (err) {
      for (const track of media.getTracks()) track.stop();
      throw err;
    }
    const pc = new RTCPeerConnection({ iceServers: grant.ice_servers || [] });
    this.sharing = { pc, location: null, token: grant.token, media };
    for (const track of media.getVideoTracks()) {
      track.contentHint = "detail";  // documents and slides: keep the resolution, lower the frame rate if need be
      pc.addTransceiver(track, { direction: "sendonly" });
      track.addEventListener("ended", () => this.stopSharing());
    }
    try {
      this.sharing.location = await negotiate(pc, `${grant.whip}?content=1`, grant.token);
    } catch (err) {
      this.stopSharing();
      throw err;
    }
    this.onSharing?.(true);
  }

  stopSharing() {
    const share = this.sharing;
    this.sharing = null;
    if (!share) return;
    hangUp(share.location, share.token);
    share.pc.close();
    for (const t of share.media.getTracks()) t.stop();
    this.onSharing?.(false);
  }

  stopContent() {
    const player = this.contentPlayer;
    this.contentPlayer = null;
    if (player) { clearInterval(player.timer); hangUp(player.location, player.token); player.pc.close(); }
    this.onContent?.(false);
    this.stopSharing();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.syncTimer);
    this.teardown();
    this.setStatus("idle");
  }
}

// Everything the page needs: the panel's elements (templates/_media_panel.html) wired to a link.
// Screen sharing in the panel: web/static/share.js (mountContent), on the pages that play the programme.
export function mountMedia(meetingId, { alwaysPublish = false, micAlways = false, held = false } = {}) {
  const q = (sel) => document.querySelector(sel);
  const soundRow = q("#sound-row");
  const link = new MediaLink({
    meetingId, video: q("#programme"), audioBox: q("#programme-audio"), preview: q("#my-camera"),
    onStatus: statusShower(q("#media-status")), alwaysPublish, micAlways, held,
    onAudioBlocked: () => { if (soundRow) soundRow.hidden = false; },
  });
  q("#sound-btn")?.addEventListener("click", () => {
    for (const a of q("#programme-audio").querySelectorAll("audio")) a.play().catch(() => {});
    soundRow.hidden = true;
  });
  link.ended = () => {  // the meeting ended: the picture stops too (not frozen on its last frame)
    link.stop();
    link.video.srcObject = null;
    link.video.dataset.stopped = "1";
  };
  window.addEventListener("pagehide", () => link.stop());
  window.__media = link;  // for operators' debugging in the console, and for the browser tests
  return link;
}

// Shows a status label in ``el`` (data-media = the status key, for tests and styling).
export function statusShower(el) {
  return (key, label) => { if (el) { el.textContent = label; el.dataset.media = key; } };
}
