// One number format everywhere (issue #14): Vietnamese grouping and decimals — 3.355 (thousands
// dot), 99,66 % (decimal comma, a space before %); an English page ("en-GB") has 3,355 · 99.66 %.
// The same rule as
// the server's Jinja filters (server/numbers.py: vn_number, vn_percent). No DOM here: node can
// import it (tests/test_numbers.py).

const DASH = "—";  // no value

const finite = (x) => x !== null && x !== undefined && x !== "" && typeof x !== "boolean" && Number.isFinite(Number(x));

// 3355 → "3.355"; (1234.5, 1) → "1.234,5"; -1200 → "-1.200"; null → "—".
export function formatNumber(x, decimals = 0, locale = "vi-VN") {
  if (!finite(x)) return DASH;
  const [group, point] = String(locale).startsWith("en") ? [",", "."] : [".", ","];
  const fixed = Math.abs(Number(x)).toFixed(decimals);
  const [whole, frac] = fixed.split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, group);
  const negative = Number(x) < 0 && Number(fixed) !== 0;
  return `${negative ? "-" : ""}${grouped}${frac ? `${point}${frac}` : ""}`;
}

// A percentage already in percent: 99.66 → "99,66 %"; (50, 0) → "50 %"; null → "—".
export function formatPercent(p, decimals = 2, locale = "vi-VN") {
  return finite(p) ? `${formatNumber(p, decimals, locale)} %` : DASH;
}
