// Unit pickers: find a unit by name (with its province shown) instead of typing its code.
// An ARIA 1.2 combobox (input role=combobox + listbox): arrows move, Enter picks, Escape closes,
// a query that matches nothing says so in a live region. The chosen codes go into a hidden input,
// so a form posts codes as before. A picker asks a `source(query)` for options: the server's
// search (/api/units/{root}/search, the asker's subtree only) or a list already on the page.
import { t } from "/static/i18n.js";

let counter = 0;
const node = (tag, attrs = {}, ...kids) => {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== false && v != null) n.setAttribute(k, v === true ? "" : v);
  n.append(...kids);
  return n;
};

// Lower case, no diacritics ("vinh yen" finds "Phường Vĩnh Yên"), as the server's search folds.
export function fold(text) {
  return String(text).replace(/[đĐ]/g, "d").normalize("NFD").replace(/[\u0300-\u036f]/g, "")
    .toLowerCase().split(/\s+/).filter(Boolean).join(" ");
}

// Options from the server: units of `root`'s subtree whose name (or code) matches.
export function serverSource(root, { levels = null, limit = 20 } = {}) {
  return async (query) => {
    const params = new URLSearchParams({ q: query, limit: String(limit) });
    if (levels) params.set("level", levels.join(","));
    const resp = await fetch(`/api/units/${encodeURIComponent(root)}/search?${params}`, { credentials: "same-origin" });
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error(body.error?.message || t("js.picker.failed"));
    return body.units.map((u) => ({ code: u.code, name: u.name, id: u.id, level: u.level,
      province: u.province && u.province.code !== u.code ? u.province.name : "" }));
  };
}

// Options from a list on the page (e.g. the meeting's seats): [{code, name, province, id, note}].
export function listSource(items, limit = 20) {
  return async (query) => {
    const q = fold(query);
    if (!q) return [];
    const words = q.split(" ");
    const scored = [];
    for (const it of items()) {
      const name = fold(it.name);
      const code = it.code.toLowerCase();
      let tier;
      if (code === q) tier = 0;
      else if (name.startsWith(q) || ` ${name}`.includes(` ${q}`)) tier = 1;
      else if (words.every((w) => name.includes(w)) || code.startsWith(q)) tier = 2;
      else continue;
      scored.push([tier, name, it]);
    }
    scored.sort((a, b) => a[0] - b[0] || a[1].localeCompare(b[1]));
    return scored.slice(0, limit).map((s) => s[2]);
  };
}

export class UnitPicker {
  // input: the visible text box; hidden: where the chosen code(s) go (may be null);
  // multiple: several units, shown as removable chips.
  constructor(input, { source, hidden = null, multiple = false, onPick = null, describe = null }) {
    this.input = input; this.hidden = hidden; this.source = source; this.multiple = multiple;
    this.onPick = onPick; this.describe = describe;
    this.picked = [];
    this.options = [];
    this.active = -1;
    this.seq = 0;
    const id = `picker-${++counter}`;
    this.list = node("ul", { id: `${id}-list`, role: "listbox", class: "picker-list", hidden: true });
    this.status = node("p", { id: `${id}-status`, class: "picker-status muted", role: "status", "aria-live": "polite" });
    this.chips = node("ul", { class: "picker-chips", "aria-label": t("js.picker.chosen") });
    const wrap = node("div", { class: "picker" });
    input.replaceWith(wrap);
    wrap.append(input, this.list, this.status);
    if (multiple) wrap.append(this.chips);
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-expanded", "false");
    input.setAttribute("aria-controls", this.list.id);
    input.setAttribute("aria-describedby", this.status.id);
    input.setAttribute("autocomplete", "off");
    if (!input.placeholder) input.placeholder = t("js.picker.placeholder");
    input.addEventListener("input", () => this.changed());
    input.addEventListener("keydown", (e) => this.key(e));
    input.addEventListener("blur", () => setTimeout(() => this.close(), 150));
    if (hidden?.value) this.preset(hidden.value);
    else if (input.value.trim()) this.changed();  // typed before this script started: search it now
  }

  // Codes already in the hidden input (a form sent back with an error): shown as they are.
  preset(value) {
    const codes = value.split(",").map((c) => c.trim()).filter(Boolean);
    const name = this.hidden?.dataset.name;
    this.picked = codes.map((code) => ({ code, name: (codes.length === 1 && name) || code, province: "" }));
    if (this.multiple) this.renderChips();
    else if (codes.length) this.input.value = this.picked[0].name;
  }

  changed() {
    if (!this.multiple) { this.picked = []; this.sync(); }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.lookup(), 150);
  }

  async lookup() {
    const query = this.input.value.trim();
    const mine = ++this.seq;
    if (!query) { this.close(); this.status.textContent = ""; return; }
    let found;
    try {
      found = await this.source(query);
    } catch (err) {
      if (mine !== this.seq) return;
      this.close();
      this.status.textContent = err.message;
      this.status.dataset.state = "error";
      return;
    }
    if (mine !== this.seq) return;  // a newer query is on its way
    this.options = found;
    this.active = -1;
    this.status.dataset.state = found.length ? "found" : "none";
    this.status.textContent = found.length ? t("js.picker.count", { n: found.length })
      : t("js.picker.none", { q: query });
    this.list.replaceChildren(...found.map((o, i) => {
      const li = node("li", { id: `${this.list.id}-${i}`, role: "option", "aria-selected": "false",
        "data-code": o.code, class: "picker-option" },
      node("span", { class: "picker-name" }, o.name),
      node("span", { class: "picker-meta" }, [o.province, o.code, this.describe?.(o)].filter(Boolean).join(" · ")));
      li.addEventListener("mousedown", (e) => { e.preventDefault(); this.pick(o); });
      return li;
    }));
    this.list.hidden = !found.length;
    this.input.setAttribute("aria-expanded", found.length ? "true" : "false");
  }

  key(e) {
    const n = this.options.length;
    if (e.key === "ArrowDown" && n) { e.preventDefault(); this.move((this.active + 1) % n); }
    else if (e.key === "ArrowUp" && n) { e.preventDefault(); this.move((this.active - 1 + n) % n); }
    else if (e.key === "Enter" && !this.list.hidden && this.active >= 0) { e.preventDefault(); this.pick(this.options[this.active]); }
    else if (e.key === "Escape") this.close();
  }

  move(i) {
    this.active = i;
    [...this.list.children].forEach((li, j) => li.setAttribute("aria-selected", j === i ? "true" : "false"));
    const li = this.list.children[i];
    this.input.setAttribute("aria-activedescendant", li.id);
    li.scrollIntoView({ block: "nearest" });
  }

  pick(option) {
    if (this.multiple) {
      if (!this.picked.some((p) => p.code === option.code)) this.picked.push(option);
      this.input.value = "";
      this.renderChips();
    } else {
      this.picked = [option];
      this.input.value = option.province ? `${option.name} — ${option.province}` : option.name;
    }
    this.status.textContent = t("js.picker.picked", { name: option.name });
    this.status.dataset.state = "picked";
    this.sync();
    this.close();
    this.onPick?.(option);
  }

  renderChips() {
    this.chips.replaceChildren(...this.picked.map((p) => {
      const remove = node("button", { type: "button", class: "link picker-remove",
        "aria-label": t("js.picker.remove", { name: p.name }) }, "×");
      remove.addEventListener("click", () => { this.picked = this.picked.filter((x) => x !== p); this.renderChips(); this.sync(); });
      return node("li", { "data-code": p.code }, p.province ? `${p.name} (${p.province}) ` : `${p.name} `, remove);
    }));
  }

  sync() {
    if (this.hidden) this.hidden.value = this.picked.map((p) => p.code).join(",");
  }

  close() {
    this.list.hidden = true;
    this.input.setAttribute("aria-expanded", "false");
    this.input.removeAttribute("aria-activedescendant");
  }

  // After the form was accepted.
  clear() {
    this.picked = []; this.input.value = ""; this.status.textContent = "";
    if (this.multiple) this.renderChips();
    this.sync();
    this.close();
  }

  get value() { return this.picked[0] || null; }
}

// The schedule form (meetings.html): each participant row picks its unit by name; a code typed
// and not picked is sent as typed (the server says if no unit has it).
export function mountSchedulePickers(root) {
  const form = document.getElementById("schedule-form");
  if (!form) return;
  const source = serverSource(root);
  const pickers = [...form.querySelectorAll("input.unit-search")].map((input) =>
    [input, new UnitPicker(input, { source, hidden: input.parentElement.querySelector("input[type=hidden]") })]);
  form.addEventListener("submit", () => {
    for (const [input, picker] of pickers) {
      if (!picker.hidden.value && input.value.trim()) picker.hidden.value = input.value.trim();
    }
  });
}
