// Live connection to /ws: subscribe to topics, join meetings as a site, send actions.
// Reconnects by itself (backoff up to 10 s) and re-subscribes, getting a fresh snapshot each time —
// but for a close with 4001 (the login or token was revoked: docs/protocol.md).
import { t } from "/static/i18n.js";

export class Live {
  constructor({ onSnapshot, onEvent, onStatus, onError }) {
    this.handlers = { onSnapshot, onEvent, onStatus, onError };
    this.topics = new Set();
    this.joined = new Set();
    this.pending = new Map();
    this.nextId = 1;
    this.backoff = 500;
    this.connect();
  }

  connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/ws`);
    this.ws = ws;
    this.handlers.onStatus?.("connecting");
    ws.onopen = () => {
      this.backoff = 500;
      this.handlers.onStatus?.("open");
      for (const topic of this.topics) this.raw({ type: "subscribe", topic });
      for (const meeting of this.joined) this.raw({ type: "join", meeting });
    };
    ws.onmessage = (e) => this.receive(JSON.parse(e.data));
    ws.onclose = (e) => {
      this.handlers.onStatus?.("closed");
      for (const [, p] of this.pending) p.reject({ code: "disconnected", message: t("js.live.lost") });
      this.pending.clear();
      if (e.code === 4001) {  // the login (or token) was revoked: show why, then log in again
        this.handlers.onError?.({ code: "revoked", message: e.reason });
        const next = encodeURIComponent(location.pathname + location.search);
        setTimeout(() => location.assign(`/login?m=expired&next=${next}`), 4000);
        return;
      }
      setTimeout(() => this.connect(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, 10000);
    };
  }

  receive(msg) {
    if (msg.type === "snapshot") this.handlers.onSnapshot?.(msg);
    else if (msg.type === "event") this.handlers.onEvent?.(msg);
    else if (msg.type === "result" || msg.type === "error") {
      const p = this.pending.get(msg.id);
      if (p) {
        this.pending.delete(msg.id);
        msg.type === "result" ? p.resolve(msg) : p.reject(msg);
      } else if (msg.type === "error") {
        if (msg.code === "unavailable") this.resumeLater(msg.retry_after);
        this.handlers.onError?.(msg);
      }
    }
  }

  // A subscribe or join the server could not do (its database or bus was away: "unavailable")
  // is sent again, with everything else current, once it says to retry (docs/protocol.md).
  resumeLater(seconds) {
    if (this.resuming) return;
    this.resuming = setTimeout(() => {
      this.resuming = null;
      for (const topic of this.topics) this.raw({ type: "subscribe", topic });
      for (const meeting of this.joined) this.raw({ type: "join", meeting });
    }, Math.max(1, Number(seconds) || 5) * 1000);
  }

  raw(msg) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  request(msg) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (this.ws.readyState !== WebSocket.OPEN) {
        reject({ code: "disconnected", message: t("js.live.not_connected") });
        return;
      }
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ ...msg, id }));
    });
  }

  subscribe(topic) { this.topics.add(topic); this.raw({ type: "subscribe", topic }); }
  join(meeting) { this.joined.add(meeting); this.raw({ type: "join", meeting }); }
  action(meeting, action, params = {}) { return this.request({ type: "action", meeting, action, ...params }); }
}

// Rows replace rows; an older row (lower seq) never overwrites a newer one.
export class SeatStore {
  constructor() { this.seats = new Map(); this.provinces = {}; this.health = new Map(); this.speaking = new Map(); }
  load(snapshot) {
    this.seats.clear();
    for (const s of snapshot.seats) this.seats.set(s.unit_id, s);
    this.provinces = snapshot.provinces || {};
  }
  apply(row) {
    const old = this.seats.get(row.unit_id);
    if (!old || row.seq >= old.seq) this.seats.set(row.unit_id, row);
  }
  hands() {
    return [...this.seats.values()].filter((s) => s.hand_at)
      .sort((a, b) => (a.hand_at < b.hand_at ? -1 : a.hand_at > b.hand_at ? 1 : a.unit_id - b.unit_id));
  }
}
