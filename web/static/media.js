// Pictures and sound of a meeting, through the bridges (docs/protocol.md, "Media"):
// play the programme from the site's bridge over WHEP, publish camera and microphone over WHIP
// when allowed (the chair always; a site while it holds the floor), and come back by itself —
// a new peer connection with a fresh join token — after a drop or a bridge restart.

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
const DISCONNECTED_GRACE_MS = 2000;
const ICE_GATHER_MS = 1500;

class HttpError extends Error {
  constructor(message, status, code) { super(message); this.status = status; this.code = code; }
}

async function fetchGrant(meetingId) {
  const resp = await fetch(`/api/meetings/${meetingId}/media`, { credentials: "same-origin", cache: "no-store" });
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
async function negotiate(pc, url, token) {
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

function hangUp(location, token) {
  if (location) fetch(location, { method: "DELETE", headers: { Authorization: `Bearer ${token}` } }).catch(() => {});
}

export class MediaLink {
  // video: the <video> that shows the programme; audioBox: where one <audio> per incoming sound
  // track goes; onStatus(key, label); publishVideo: a <video> previewing what this site sends.
  // micAlways: a site sends its microphone even without the floor (its bridge reads who speaks;
  // the sound reaches nobody unless the site holds the floor and is not muted).
  // held: publish nothing (not even with the floor) until ``release()`` — the site page's check of
  // camera and microphone comes first; ``release(devices)`` names the devices chosen there.
  constructor({ meetingId, video, audioBox, onStatus, preview = null, alwaysPublish = false, onAudioBlocked = null,
    micAlways = false, held = false }) {
    Object.assign(this, { meetingId, video, audioBox, onStatus, preview, alwaysPublish, onAudioBlocked, micAlways, held });
    this.devices = { audio: null, video: null };
    this.micEnabled = true;
    this.grant = null;
    this.player = null;
    this.publisher = null;
    this.wantPublish = alwaysPublish;
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
      if (this.held) { /* nothing sent before the site's device check */ }
      else if (this.wantPublish) await this.publish(true);
      else if (this.micAlways) await this.publish(false).catch(() => {});  // no microphone: still play
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

  // The floor came to this site (or went): start or stop sending camera and microphone.
  async setPublishing(on) {
    this.wantPublish = on || this.alwaysPublish;
    if (this.held) return;
    if (this.wantPublish && !this.publisher?.video && this.grant?.bridge) {
      const micOnly = this.publisher;
      try {
        this.grant = await fetchGrant(this.meetingId);  // fresh token, and may_publish now true
        // Camera and microphone replace the microphone alone, make before break: the bridge ends
        // the old publication once the new one carries media, so the floor is heard without a gap.
        this.publisher = null;
        await this.publish(true);
        if (micOnly) this.retire(micOnly, this.publisher?.pc);
      } catch (err) {
        if (micOnly && !this.publisher) this.publisher = micOnly;
        else if (micOnly) this.retire(micOnly, null);
        if (err?.name === "NotAllowedError") this.setStatus("denied");
        else setTimeout(() => this.setPublishing(this.wantPublish), 1000);
      }
    } else if (!this.wantPublish && this.publisher?.video) {
      this.stopPublishing();
      if (this.micAlways && this.grant?.bridge) await this.publish(false).catch(() => {});
    }
  }

  // The site's check of camera and microphone is done: send with these devices from now on (and
  // again after a drop), starting at once when the site holds the floor or always sends its microphone.
  async release(devices = {}) {
    this.devices = { audio: devices.audio || null, video: devices.video || null };
    this.held = false;
    if (this.stopped || !this.grant?.bridge) return;
    if (this.wantPublish) await this.setPublishing(true);
    else if (this.micAlways && !this.publisher) await this.publish(false).catch(() => {});
  }

  // The chair (or the province) muted this site: the microphone track stops too. The bridge drops
  // a muted site's sound whatever the page does; this is so the site knows and sends nothing.
  setMicEnabled(on) {
    this.micEnabled = on;
    for (const t of this.publisher?.media.getAudioTracks() || []) t.enabled = on;
  }

  async publish(withVideo = true) {
    if (this.publisher) return;
    const g = this.grant;
    const ask = () => {
      const { audio: mic, video: cam } = this.devices;
      return navigator.mediaDevices.getUserMedia({
        video: withVideo ? { width: 640, height: 480, ...(cam ? { deviceId: { exact: cam } } : {}) } : false,
        audio: mic ? { deviceId: { exact: mic } } : true });
    };
    const media = await ask().catch((err) => {
      // the chosen device is gone (unplugged): the default ones rather than no picture and sound
      if (!["OverconstrainedError", "NotFoundError"].includes(err?.name) || !(this.devices.audio || this.devices.video)) throw err;
      this.devices = { audio: null, video: null };
      return ask();
    });
    for (const t of media.getAudioTracks()) t.enabled = this.micEnabled;
    const pc = new RTCPeerConnection({ iceServers: g.ice_servers || [] });
    this.publisher = { pc, location: null, token: g.token, media, video: withVideo };
    this.watch(pc, "publisher");
    for (const track of media.getTracks()) pc.addTransceiver(track, { direction: "sendonly", streams: [media] });
    if (this.preview && withVideo) { this.preview.srcObject = media; this.preview.muted = true; this.preview.play?.().catch(() => {}); }
    try {
      this.publisher.location = await negotiate(pc, g.whip, g.token);
      this.watchTransport(pc, "publisher");
    } catch (err) {
      this.stopPublishing();
      throw err;
    }
  }

  // End a replaced publication once its successor is connected (and a moment more, for the bridge
  // to take the new source at its first packet).
  retire(old, successor) {
    let ended = false;
    const finish = () => {
      if (ended) return;
      ended = true;
      successor?.removeEventListener("connectionstatechange", settled);
      setTimeout(() => {
        hangUp(old.location, old.token);
        old.pc.close();
        for (const t of old.media.getTracks()) t.stop();
      }, 1000);
    };
    const settled = () => { if (["connected", "failed", "closed"].includes(successor.connectionState)) finish(); };
    if (!successor || successor.connectionState === "connected") { finish(); return; }
    successor.addEventListener("connectionstatechange", settled);
    setTimeout(finish, 5000);  // never keep the old one longer than this
  }

  stopPublishing() {
    const pub = this.publisher;
    this.publisher = null;
    if (!pub) return;
    hangUp(pub.location, pub.token);
    pub.pc.close();
    for (const t of pub.media.getTracks()) t.stop();
    if (this.preview) this.preview.srcObject = null;
  }

  teardown() {
    const player = this.player;
    this.player = null;
    if (player) { hangUp(player.location, player.token); player.pc.close(); }
    this.stopPublishing();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.teardown();
    this.setStatus("idle");
  }
}

// Everything the page needs: the panel's elements (templates/_media_panel.html) wired to a link.
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
