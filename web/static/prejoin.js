// The site's check of camera and microphone before it sends anything (issue #14): device pickers
// (enumerateDevices), a preview, a live microphone level (WebAudio), then "Vào hội nghị". The
// choice is kept for this tab (sessionStorage): a reload during the meeting does not ask again.
import { t } from "/static/i18n.js";

const KEY = "hoinghi.prejoin";
const LEVEL_MS = 100;

export function rememberedChoice() {
  try {
    const raw = sessionStorage.getItem(KEY);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

function remember(choice) {
  try { sessionStorage.setItem(KEY, JSON.stringify(choice)); } catch { /* private mode: ask again next time */ }
}

// root: the #prejoin card; onJoin({audio, video, cameraLabel, micLabel}) once the operator joins.
export class DeviceCheck {
  constructor(root, onJoin) {
    this.root = root;
    this.onJoin = onJoin;
    this.q = (sel) => root.querySelector(sel);
    this.stream = null;
    this.audio = null;  // { ctx, timer }
    this.q("#join-btn").addEventListener("click", () => this.join());
    this.q("#prejoin-retry").addEventListener("click", () => this.start());
    this.q("#recheck-btn").addEventListener("click", () => this.reopen());
    this.q("#cam-select").addEventListener("change", () => this.start());
    this.q("#mic-select").addEventListener("change", () => this.start());
  }

  setPhase(phase) {
    this.root.dataset.phase = phase;
    this.q("#prejoin-check").hidden = phase === "joined";
    this.q("#prejoin-done").hidden = phase !== "joined";
  }

  error(text) {
    const box = this.q("#prejoin-error");
    box.textContent = text || "";
    box.hidden = !text;
  }

  // Ask for the chosen (or default) devices, show them, fill the pickers, measure the microphone.
  async start() {
    this.stopStream();
    this.setPhase("check");
    this.error("");
    const cam = this.q("#cam-select").value || undefined;
    const mic = this.q("#mic-select").value || undefined;
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({
        video: cam ? { deviceId: { exact: cam } } : true, audio: mic ? { deviceId: { exact: mic } } : true });
    } catch (err) {
      this.error(err?.name === "NotAllowedError" ? t("js.site.devices_denied") : t("js.site.devices_missing"));
      this.root.dataset.devices = "none";
      await this.fillPickers();
      return;
    }
    const preview = this.q("#prejoin-preview");
    preview.srcObject = this.stream;
    preview.play?.().catch(() => {});
    await this.fillPickers();
    this.measure();
    this.root.dataset.devices = "ok";
  }

  async fillPickers() {
    let devices = [];
    try { devices = await navigator.mediaDevices.enumerateDevices(); } catch { /* none listed */ }
    const inUse = (kind) => this.stream?.getTracks().find((tr) => tr.kind === kind)?.getSettings().deviceId;
    const fill = (select, kind, none) => {
      const list = devices.filter((d) => d.kind === kind && d.deviceId);
      const current = inUse(kind === "videoinput" ? "video" : "audio") || select.value;
      select.replaceChildren(...(list.length ? list : [{ deviceId: "", label: none }]).map((d, i) => {
        const opt = document.createElement("option");
        opt.value = d.deviceId;
        opt.textContent = d.label || (d.deviceId === "default" ? t("js.site.device_default") : t("js.site.device_n", { n: i + 1 }));
        return opt;
      }));
      if (current && list.some((d) => d.deviceId === current)) select.value = current;
      select.disabled = !list.length;
    };
    fill(this.q("#cam-select"), "videoinput", t("js.site.no_camera"));
    fill(this.q("#mic-select"), "audioinput", t("js.site.no_mic"));
  }

  // The microphone's level (RMS of the waveform), ten times a second, into the <meter>.
  measure() {
    const track = this.stream?.getAudioTracks()[0];
    if (!track) return;
    const ctx = new AudioContext();
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 1024;
    ctx.createMediaStreamSource(new MediaStream([track])).connect(analyser);
    const buf = new Float32Array(analyser.fftSize);
    const meter = this.q("#mic-level");
    const timer = setInterval(() => {
      analyser.getFloatTimeDomainData(buf);
      let sum = 0;
      for (const x of buf) sum += x * x;
      const level = Math.min(1, Math.sqrt(sum / buf.length) * 4);  // speech sits around 0.05–0.2 RMS
      meter.value = level;
      meter.dataset.peak = String(Math.max(Number(meter.dataset.peak) || 0, level));
    }, LEVEL_MS);
    this.audio = { ctx, timer };
    // Browsers may start an AudioContext suspended until a click: any click on the card resumes it.
    if (ctx.state === "suspended") this.root.addEventListener("click", () => ctx.resume(), { once: true });
  }

  stopStream() {
    if (this.audio) { clearInterval(this.audio.timer); this.audio.ctx.close().catch(() => {}); this.audio = null; }
    for (const tr of this.stream?.getTracks() || []) tr.stop();
    this.stream = null;
    const preview = this.q("#prejoin-preview");
    if (preview) preview.srcObject = null;
  }

  label(select) {
    return select.disabled ? "—" : select.selectedOptions[0]?.textContent || "—";
  }

  join() {
    const camSel = this.q("#cam-select");
    const micSel = this.q("#mic-select");
    const choice = { video: camSel.disabled ? null : camSel.value || null, audio: micSel.disabled ? null : micSel.value || null,
      cameraLabel: this.label(camSel), micLabel: this.label(micSel) };
    this.stopStream();  // the publication opens its own capture with these devices
    remember(choice);
    this.joined(choice);
    this.onJoin(choice);
  }

  joined(choice) {
    this.q("#prejoin-summary").textContent = t("js.site.joined_with", { camera: choice.cameraLabel || "—", mic: choice.micLabel || "—" });
    this.setPhase("joined");
  }

  reopen() {
    this.start();
  }
}
