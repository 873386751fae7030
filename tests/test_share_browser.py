"""#17 Screen sharing in real headless Chromium, with the central bridge (BCA) and Phú Thọ's bridge
(25, cascading from it) as real processes. Chromium's fake capture answers getDisplayMedia with a
"screen" of the window's width at 16:9 (--use-fake-device-for-media-stream with
--use-fake-ui-for-media-stream picks it without a prompt; the click gives the user activation), the
cameras are 640×480 and 480×360:

- the chair clicks "Chia sẻ màn hình" on its console: Vĩnh Yên, a commune behind the provincial
  bridge, decodes the content (frames growing, at the size the chair captures) and shows it large, the chair's picture
  small beside it, all of it without scrolling; the chair's console shows it the same way;
- "Dừng chia sẻ": the commune's page is back to the programme alone;
- Phúc Yên, without the floor, has no share button, and a share it tries anyway (a page whose floor
  has just gone) is refused by its bridge (403 floor_required) with the Vietnamese message on its
  page; nothing is shared;
- the floor to Vĩnh Yên: its page offers "Chia sẻ màn hình".
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from server.services.media import bridge_key
from tests.browser_util import chromium, chromium_path, login, new_page, shot
from tests.conftest import LiveServer
from tests.live_util import free_port, schedule, set_state
from tests.media_browser_util import Bridge, WallClock, add_site_operator, bridge_token, camera_script, plays
from tests.site_layout_util import no_sideways_scroll, screenshot, until_true

pytestmark = pytest.mark.browser
WAIT = 20_000
CHAIR_SIZE = (640, 480)
SITE_SIZE = (480, 360)
VY, PY = "08707", "08740"
REFUSED = "Chỉ chủ trì hoặc điểm cầu đang được phát biểu mới được chia sẻ màn hình"

# What the page's content player decodes (the shared screen), from its own peer connection
CONTENT_STATS = """async () => {
  const pc = window.__media?.contentPlayer?.pc;
  if (!pc) return null;
  const out = {frames: 0, width: 0, height: 0};
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") {
      out.frames += s.framesDecoded || 0;
      if (s.frameWidth) { out.width = s.frameWidth; out.height = s.frameHeight; }
    }
  });
  return out;
}"""

# What the chair's browser sends of its screen (printed when the test fails)
SHARE_STATS = """async () => {
  const pc = window.__media?.sharing?.pc;
  if (!pc) return null;
  const out = [];
  (await pc.getStats()).forEach((s) => {
    if (s.type === "outbound-rtp") out.push({frames: s.framesEncoded, sent: s.framesSent, fps: s.framesPerSecond,
      limited: s.qualityLimitationReason, w: s.frameWidth, h: s.frameHeight, plis: s.pliCount});
  });
  return {state: pc.connectionState, out};
}"""

CONTENT_DEBUG = """async () => {
  const pc = window.__media?.contentPlayer?.pc;
  if (!pc) return null;
  const out = [];
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp") out.push({recv: s.framesReceived, dec: s.framesDecoded, drop: s.framesDropped,
      key: s.keyFramesDecoded, lost: s.packetsLost, pkts: s.packetsReceived, nack: s.nackCount, pli: s.pliCount,
      fir: s.firCount});
  });
  return {state: pc.connectionState, out};
}"""

# Where the content and the speaker's picture are on the screen (shown: in the viewport, not hidden)
LAYOUT = """() => {
  const box = (el) => { const r = el.getBoundingClientRect(); return {w: r.width, h: r.height, top: r.top,
    bottom: r.bottom, left: r.left, right: r.right, shown: !el.hidden && r.width > 0 && r.height > 0}; };
  return {content: box(document.querySelector('#content')), programme: box(document.querySelector('#programme')),
          vw: window.innerWidth, vh: window.innerHeight,
          width: document.querySelector('#content').videoWidth};
}"""


async def open_page(browser: Any, srv: LiveServer, username: str, path: str, size: tuple[int, int] | None = None,
                    width: int = 1440, height: int = 900) -> Page:
    page = await new_page(browser, width=width, height=height)
    await page.context.add_init_script(camera_script(size))
    await login(page, srv.url, username)
    await page.goto(f"{srv.url}{path}")
    return page


async def content_plays(page: Page, size: tuple[int, int], within: float, frames: int = 20, what: str = "") -> None:
    """The page's content player decodes ``frames`` more frames at ``size``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    first: dict[str, Any] | None = None
    last = None
    while True:
        last = await page.evaluate(CONTENT_STATS)
        if last is not None and (last["width"], last["height"]) == size:
            if first is None:
                first = last
            elif last["frames"] - first["frames"] >= frames:
                return
        if loop.time() > deadline:
            raise AssertionError(f"{what}: no content at {size} within {within} s; last stats {last}")
        await asyncio.sleep(0.1)


async def shown_large(page: Page, what: str) -> dict[str, Any]:
    """The content is shown, large, and the speaker small, both inside the window without scrolling."""
    await until_true(page, "() => !document.querySelector('#content').hidden", within=WAIT / 1000)
    layout: dict[str, Any] = await page.evaluate(LAYOUT)
    content, programme = layout["content"], layout["programme"]
    assert content["shown"] and programme["shown"], (what, layout)
    assert content["w"] >= 2 * programme["w"], (what, "the content is not large beside the speaker", layout)
    for name, r in (("content", content), ("programme", programme)):
        assert r["left"] >= 0 and r["right"] <= layout["vw"] + 1, (what, name, "off the window's width", layout)
    assert content["top"] < layout["vh"], (what, "the content is below the window", layout)
    return layout


async def test_chair_shares_a_screen_seen_behind_a_provincial_bridge(server_factory: Any, sqlite_url: str,
                                                                     tmp_path: Path) -> None:
    chromium_path()  # skip (locally) or fail (in CI) before starting anything when Chromium is missing
    central_port, province_port = free_port(), free_port()
    srv: LiveServer = await server_factory(
        sqlite_url, clock=WallClock(),
        bridges=f"BCA=http://127.0.0.1:{central_port}, 25=http://127.0.0.1:{province_port}")
    central = Bridge("BCA", central_port, srv.url, await bridge_token(srv, "BCA"), bridge_key(srv.settings, "BCA"),
                     tmp_path / "bridge-BCA.log")
    province = Bridge("25", province_port, srv.url, await bridge_token(srv, "25"), bridge_key(srv.settings, "25"),
                      tmp_path / "bridge-25.log", upstream=central.url)
    chair_api = await srv.login("chutri")
    await add_site_operator(srv, "phucyen", PY)
    pages: dict[str, Page] = {}
    try:
        await asyncio.gather(central.start(), province.start())
        mid = await schedule(chair_api, title="Hội nghị trực tuyến: chia sẻ màn hình")
        await set_state(chair_api, mid, "rehearsal", "live")
        async with chromium() as browser:
            try:
                pages["chair"] = await open_page(browser, srv, "chutri", f"/meetings/{mid}/chair", CHAIR_SIZE)
                pages["vinhyen"] = await open_page(browser, srv, "vinhyen", f"/meetings/{mid}/site", SITE_SIZE)
                pages["phucyen"] = await open_page(browser, srv, "phucyen", f"/meetings/{mid}/site", SITE_SIZE)
                await check_sharing(srv, chair_api, mid, pages)
                # the content players are no sites' connections in the health reports: nothing refused
                refused = [line for line in central.lines + province.lines if "stats_invalid" in line]
                assert not refused, refused
            except BaseException:
                with contextlib.suppress(Exception):
                    print("the chair's share:", await pages["chair"].evaluate(SHARE_STATS))
                    print("Vĩnh Yên's content:", await pages["vinhyen"].evaluate(CONTENT_DEBUG))
                for name, page in pages.items():
                    with contextlib.suppress(Exception):
                        await shot(page, tmp_path, f"share-{name}-failed")
                raise
    finally:
        await asyncio.gather(province.stop(), central.stop())


async def check_sharing(srv: LiveServer, chair_api: Any, mid: int, pages: dict[str, Page]) -> None:
    chair, site, other = pages["chair"], pages["vinhyen"], pages["phucyen"]
    # ---- Before anyone shares: the commune plays the chair through Phú Thọ's bridge; no content shown.
    await plays(site, CHAIR_SIZE, 30, what="Vĩnh Yên plays the chair")
    assert (await site.evaluate("window.__media.grant"))["bridge"]["unit"] == "25"
    await until_true(site, "() => Boolean(window.__media.contentPlayer?.location)", within=WAIT / 1000)
    assert await site.locator("#content").is_hidden()
    await expect(site.locator("#share-screen")).to_be_hidden()  # a site without the floor: no button

    # ---- The chair shares its screen.
    share = chair.get_by_role("button", name="Chia sẻ màn hình", exact=True)
    await expect(share).to_be_visible(timeout=WAIT)
    await share.click()
    await expect(chair.get_by_role("button", name="Dừng chia sẻ", exact=True)).to_be_visible(timeout=WAIT)
    captured = await chair.evaluate("window.__media.sharing.media.getVideoTracks()[0].getSettings()")
    screen = (captured["width"], captured["height"])
    assert screen[0] > CHAIR_SIZE[0], captured  # not the camera
    await content_plays(site, screen, 30, what="Vĩnh Yên decodes the chair's screen (through bridge 25)")
    layout = await shown_large(site, "Vĩnh Yên's page")
    assert layout["width"] == screen[0]
    await plays(site, CHAIR_SIZE, 15, what="Vĩnh Yên still plays the chair, small")
    await screenshot(site, "share-site-1440x900")
    await content_plays(chair, screen, 30, what="the chair's console shows its own share")
    await shown_large(chair, "the chair's console")
    await screenshot(chair, "share-chair-1440x900")
    sizes = await no_sideways_scroll(site)
    assert sizes["scroll"] <= sizes["inner"], sizes

    # ---- A site without the floor tries anyway: refused, said in Vietnamese; nothing shared by it.
    await expect(other.locator("#share-screen")).to_be_hidden()
    refused = await other.evaluate("window.__media.share().then(() => 'shared', (e) => e.code || String(e))")
    assert refused == "floor_required", refused
    await expect(other.locator("#share-error")).to_have_text(REFUSED)
    await expect(other.locator("#share-error")).to_be_visible()
    assert await other.evaluate("!window.__media.sharing")
    await content_plays(site, screen, 15, what="the chair's share goes on after the refusal")

    # ---- The chair stops: the commune's page shows the programme alone again.
    await chair.get_by_role("button", name="Dừng chia sẻ", exact=True).click()
    await expect(chair.get_by_role("button", name="Chia sẻ màn hình", exact=True)).to_be_visible()
    await until_true(site, "() => document.querySelector('#content').hidden", within=WAIT / 1000)
    assert await site.evaluate("document.querySelector('.media-panel').dataset.sharing") == ""
    await plays(site, CHAIR_SIZE, 15, what="Vĩnh Yên plays the chair after the share")

    # ---- The floor to Vĩnh Yên: its page offers to share.
    resp = await chair_api.api("POST", f"/api/meetings/{mid}/floor", json={"action": "grant", "unit": VY})
    assert resp.status == 200, await resp.text()
    await expect(site.get_by_role("button", name="Chia sẻ màn hình", exact=True)).to_be_visible(timeout=WAIT)
    await expect(other.locator("#share-screen")).to_be_hidden()
