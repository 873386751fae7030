"""What the #14 browser tests measure on a page: sideways scrolling, and KPI cells narrower than the
longest word (or chart) they hold — a word wider than its cell is a word broken or cut off."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from playwright.async_api import Page

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "var" / "screenshots"
SIZES = [(1440, 900), (1920, 1080), (390, 844)]

NO_SIDEWAYS = "() => ({scroll: document.documentElement.scrollWidth, inner: innerWidth})"

# Every shown cell of the KPI tables under ``root``: its inner width (client width less padding) and
# the widest word of its text, measured in the font of the element that holds it (canvas), or the
# widest chart (uPlot canvas) inside it; cells of a visually hidden header are skipped.
NARROW_CELLS = """(root) => {
  const ctx = document.createElement("canvas").getContext("2d");
  const out = [];
  const box = document.querySelector(root);
  if (!box) return [{text: "no " + root}];
  const panel = box.getBoundingClientRect();
  for (const cell of box.querySelectorAll("table th, table td")) {
    const head = cell.closest("thead");
    if (head && head.getBoundingClientRect().width <= 2) continue;
    if (!cell.getClientRects().length) continue;
    const cs = getComputedStyle(cell);
    const inner = cell.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
    let longest = 0, word = "";
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
      const f = getComputedStyle(walker.currentNode.parentElement);
      ctx.font = `${f.fontStyle} ${f.fontWeight} ${f.fontSize} ${f.fontFamily}`;
      for (const w of walker.currentNode.textContent.split(/\\s+/)) {
        if (!w) continue;
        const width = ctx.measureText(w).width;
        if (width > longest) { longest = width; word = w; }
      }
    }
    for (const c of cell.querySelectorAll("canvas")) {
      const width = c.getBoundingClientRect().width;
      if (width > longest) { longest = width; word = "(chart)"; }
    }
    const r = cell.getBoundingClientRect();
    const cut = r.right > panel.right + 1 || r.left < panel.left - 1;
    if (longest > inner + 0.5 || cut) {
      out.push({text: cell.textContent.trim().slice(0, 40), word, longest: Math.round(longest),
                inner: Math.round(inner), cut});
    }
  }
  return out;
}"""


async def until_true(page: Page, expression: str, within: float = 10.0, arg: Any = None) -> None:
    """Poll ``expression`` (a function of ``arg``) in the page until it is true; the page's CSP forbids
    the string evaluation that Playwright's wait_for_function polls with."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await page.evaluate(expression, arg):
        if loop.time() > deadline:
            raise AssertionError(f"{page.url}: {expression} ({arg}) still false after {within} s")
        await asyncio.sleep(0.1)


async def no_sideways_scroll(page: Page) -> dict[str, Any]:
    sizes: dict[str, Any] = await page.evaluate(NO_SIDEWAYS)
    return sizes


async def narrow_cells(page: Page, root: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await page.evaluate(NARROW_CELLS, root)
    return found


async def screenshot(page: Page, name: str) -> Path:
    """A full-page screenshot under var/screenshots/ (not committed) for people to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(target), full_page=True)
    return target
