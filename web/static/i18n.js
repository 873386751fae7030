// The page's messages in its language: the server embeds the `js.*` catalog entries as JSON
// (<script id="i18n-js"> in base.html); `t("js.key", {n: 3})` fills `{n}`. An unknown key shows
// itself, so a missing translation is visible rather than silent.
const catalog = (() => {
  const el = typeof document !== "undefined" ? document.getElementById("i18n-js") : null;
  try {
    return el ? JSON.parse(el.textContent) : {};
  } catch {
    return {};
  }
})();

export function t(key, params = {}) {
  let text = catalog[key] ?? key;
  for (const [name, value] of Object.entries(params)) text = text.replaceAll(`{${name}}`, String(value));
  return text;
}

export const lang = typeof document !== "undefined" ? document.documentElement.lang || "vi" : "vi";
// Number formatting of the page's language (Intl locale).
export const locale = lang === "en" ? "en-GB" : "vi-VN";
