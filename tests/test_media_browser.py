"""#4 in real headless Chromium with a fake camera and microphone, through real bridge processes:
the central bridge (BCA) and Phú Thọ's bridge (25) cascading from it (``--upstream``).

- The chair publishes from the chair console to the central bridge; two communes of Phú Thọ
  (08707 Vĩnh Yên = A, 08740 Phúc Yên = B) play through their province's bridge and decode the
  chair's video and audio (``getStats()`` of ``window.__media.player.pc``); the roll call shows
  both present online, as the provincial bridge reports them.
- The chair gives the floor to A: A publishes (480×360, the chair 640×480, so the pictures can be
  told apart) and B and the chair decode A's video within 2 s; the floor goes back to the chair
  and B sees the chair again.
- Phú Thọ's bridge is killed during the meeting and restarted on the same port: its communes play
  again within 10 s of the restart, and the roll call shows the gap (two attendance intervals).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from server.services.media import bridge_key
from server.state import DB
from sessions.store import live as live_store
from tests.browser_util import chromium, chromium_path, login, new_page, shot
from tests.conftest import Client, LiveServer
from tests.live_util import WsClient, free_port, schedule, set_state
from tests.media_browser_util import (
    Bridge,
    WallClock,
    add_site_operator,
    bridge_token,
    camera_script,
    player_stats,
    plays,
    shows,
)

pytestmark = pytest.mark.browser

CHAIR_SIZE = (640, 480)
# What a player shows of the chair: either rendition of its camera (as SITE_SEEN, below)
CHAIR_SEEN = (CHAIR_SIZE, (320, 240))
SITE_SIZE = (480, 360)
# What a player shows of commune A: either of its camera's renditions (the bridge moves a player to the
# low one when its reports say so, as a loaded machine's loopback sometimes does: issue #16)
SITE_SEEN = (SITE_SIZE, (240, 180))
A, B = "08707", "08740"


@dataclass
class Meeting:
    srv: LiveServer
    chair_api: Client
    mid: int
    central: Bridge
    province: Bridge
    browser: Browser
    chair: Page
    site_a: Page
    site_b: Page
    rollcall: WsClient


async def open_page(browser: Browser, srv: LiveServer, username: str, path: str,
                    size: tuple[int, int] | None = None) -> Page:
    page = await new_page(browser)
    await page.context.add_init_script(camera_script(size))
    await login(page, srv.url, username)
    await page.goto(f"{srv.url}{path}")
    return page


@contextlib.asynccontextmanager
async def media_meeting(server_factory: Any, sqlite_url: str, tmp_path: Path) -> AsyncIterator[Meeting]:
    """A live nationwide meeting; BCA's and Phú Thọ's bridges as processes; the chair console and
    the two communes' pages open and playing."""
    chromium_path()  # skip (locally) or fail (in CI) before starting anything when Chromium is missing
    central_port, province_port = free_port(), free_port()
    srv: LiveServer = await server_factory(
        sqlite_url, clock=WallClock(),
        bridges=f"BCA=http://127.0.0.1:{central_port}, 25=http://127.0.0.1:{province_port}")
    await add_site_operator(srv, "phucyen", B)
    central = Bridge("BCA", central_port, srv.url, await bridge_token(srv, "BCA"), bridge_key(srv.settings, "BCA"),
                     tmp_path / "bridge-BCA.log")
    province = Bridge("25", province_port, srv.url, await bridge_token(srv, "25"), bridge_key(srv.settings, "25"),
                      tmp_path / "bridge-25.log",
                      upstream=central.url)
    chair_api = await srv.login("chutri")
    rollcall: WsClient | None = None
    try:
        await asyncio.gather(central.start(), province.start())
        mid = await schedule(chair_api, title="Hội nghị trực tuyến toàn quốc: thử hình và tiếng")
        await set_state(chair_api, mid, "rehearsal", "live")
        rollcall = await WsClient.open(await srv.login("phutho"))
        await rollcall.request({"type": "subscribe", "topic": f"rollcall:{mid}:25"})
        async with chromium() as browser:
            chair = await open_page(browser, srv, "chutri", f"/meetings/{mid}/chair")
            site_a = await open_page(browser, srv, "vinhyen", f"/meetings/{mid}/site", SITE_SIZE)
            site_b = await open_page(browser, srv, "phucyen", f"/meetings/{mid}/site")
            try:
                yield Meeting(srv, chair_api, mid, central, province, browser, chair, site_a, site_b, rollcall)
            except BaseException:
                for name, page in (("chair", chair), ("site-a", site_a), ("site-b", site_b)):
                    with contextlib.suppress(Exception):
                        await shot(page, tmp_path, f"media-failed-{name}")
                raise
    finally:
        if rollcall is not None:
            await rollcall.close()
        await asyncio.gather(province.stop(), central.stop())


# The publisher's own view of what it sends: Chromium's bandwidth estimate for the connection and
# each rendition's target bitrate and frame rate.
SENDING = """async () => {
  const pc = window.__media?.publisher?.pc;
  if (!pc) return null;
  const out = {available: 0, high: null};
  (await pc.getStats()).forEach((s) => {
    if (s.type === "candidate-pair" && s.nominated && s.availableOutgoingBitrate)
      out.available = s.availableOutgoingBitrate;
    if (s.type === "outbound-rtp" && s.kind === "video" && (s.frameWidth || 0) >= 640)
      out.high = {target: s.targetBitrate || 0, fps: s.framesPerSecond || 0, width: s.frameWidth};
  });
  return out;
}"""


async def sends_high(page: Page, within: float) -> dict[str, Any]:
    """Wait until ``page``'s camera has over 400 kbit/s of estimated bandwidth and its high rendition
    a target over 250 kbit/s; returns what it sends."""
    deadline = time.monotonic() + within
    last: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        last = await page.evaluate(SENDING)
        if last and last["available"] > 400_000 and last["high"] and last["high"]["target"] > 250_000:
            return last
        await asyncio.sleep(0.5)
    raise AssertionError(f"the chair's camera is held to a low bitrate after {within:.0f} s: {last}")


def online(ws: WsClient, code: str) -> bool:
    seat = ws.seat(code) or {}
    return seat.get("online") == 1 and seat.get("status") == "present_online"


async def test_chair_to_communes_through_the_cascade_and_the_floor(server_factory: Any, sqlite_url: str,
                                                                    tmp_path: Path) -> None:
    async with media_meeting(server_factory, sqlite_url, tmp_path) as m:
        # The chair's camera reaches both communes through central → Phú Thọ, sound too.
        await plays(m.site_a, CHAIR_SIZE, 20, what="commune A plays the chair")
        await plays(m.site_b, CHAIR_SIZE, 10, what="commune B plays the chair")
        await plays(m.chair, CHAIR_SIZE, 10, what="the chair's own programme", audio=False)
        for page in (m.chair, m.site_a, m.site_b):
            await expect(page.locator("#media-status")).to_have_attribute("data-media", "connected")
        assert await m.site_a.evaluate("!window.__media.publisher?.video")
        # The chair's camera goes out at the rate its link carries: the bridge's bandwidth estimate
        # (REMB) covers both renditions, so Chromium's estimate grows past the low rendition's
        # ~150 kbit/s and the high one gets most of it (an estimate per rendition capped the
        # connection at ~140 kbit/s: the communes saw the chair at 3–4 frames a second).
        sending = await sends_high(m.chair, within=30)
        a0 = await player_stats(m.site_a)
        await asyncio.sleep(5)
        a1 = await player_stats(m.site_a)
        assert a0 is not None and a1 is not None
        fps = (a1["frames"] - a0["frames"]) / 5
        print(f"the chair sends: {sending}; commune A decodes {fps:.1f} frames/s")
        assert fps >= 8, f"commune A sees the chair at {fps:.1f} frames/s ({sending})"
        # The roll call: both communes present online, as Phú Thọ's bridge reported them.
        await m.rollcall.until(lambda: online(m.rollcall, A) and online(m.rollcall, B), within=10)

        # Their connection health, as the bridge measures it, reaches Phú Thọ's console.
        await m.rollcall.until(lambda: all((m.rollcall.health.get(c) or {}).get("connected") for c in (A, B)),
                               within=15)

        # The chair gives the floor to commune A in the console: A publishes; B (same province) and
        # the chair (through the central bridge) decode A's picture within 2 s.
        await m.chair.locator("#grant-form input[name=unit]").fill(A)
        started = time.monotonic()
        await m.chair.locator("#grant-form button[type=submit]").click()
        await asyncio.gather(shows(m.site_b, SITE_SEEN, 2.0, "commune B sees commune A"),
                             shows(m.chair, SITE_SEEN, 2.0, "the chair sees commune A"))
        switched = time.monotonic() - started
        assert await m.site_a.evaluate("!!window.__media.publisher?.video && !!window.__media.publisher.pc")
        await expect(m.site_a.locator("#my-floor")).to_be_visible()
        await plays(m.site_b, SITE_SEEN, 5, what="commune B keeps playing commune A")
        await plays(m.chair, SITE_SEEN, 5, what="the chair keeps playing commune A")
        await shot(m.site_b, tmp_path, "media-commune-b-sees-a")

        # The floor back to the chair: A stops publishing, B and the chair see the chair again.
        await m.chair.locator("#revoke-btn").click()
        await asyncio.gather(shows(m.site_b, CHAIR_SIZE, 5, "commune B sees the chair again"),
                             shows(m.chair, CHAIR_SIZE, 5, "the chair sees itself again"))
        await plays(m.site_b, CHAIR_SIZE, 5, what="commune B plays the chair again")
        # Polled with evaluate: wait_for_function eval()s its text, which the page's CSP refuses.
        deadline = asyncio.get_running_loop().time() + 5
        while await m.site_a.evaluate("() => Boolean(window.__media.publisher?.video)"):
            assert asyncio.get_running_loop().time() < deadline, "commune A still publishes"
            await asyncio.sleep(0.05)
        await plays(m.site_a, CHAIR_SIZE, 5, what="commune A plays the chair again")
        print(f"floor switch to commune A seen at B and at the chair after {switched:.2f} s")


@pytest.mark.solo
async def test_provincial_bridge_killed_and_restarted(server_factory: Any, sqlite_url: str, tmp_path: Path) -> None:
    async with media_meeting(server_factory, sqlite_url, tmp_path) as m:
        await plays(m.site_a, CHAIR_SIZE, 20, what="commune A plays the chair")
        await plays(m.site_b, CHAIR_SIZE, 10, what="commune B plays the chair")
        await m.rollcall.until(lambda: online(m.rollcall, A) and online(m.rollcall, B), within=10)

        await m.province.kill()
        # Its control socket closed with it: the roll call shows the communes offline at once.
        await m.rollcall.until(lambda: not online(m.rollcall, A) and not online(m.rollcall, B), within=10)
        for page in (m.site_a, m.site_b):
            await expect(page.locator("#media-status")).to_have_attribute("data-media", "retrying", timeout=15_000)
        # The chair is not disturbed.
        await plays(m.chair, CHAIR_SIZE, 5, what="the chair while Phú Thọ is down", audio=False)

        restarted = time.monotonic()
        await m.province.start()  # the same port: the pages' bridge URL is unchanged
        await asyncio.gather(plays(m.site_a, CHAIR_SIZE, 10, what="commune A after the restart"),
                             plays(m.site_b, CHAIR_SIZE, 10, what="commune B after the restart"))
        # Both pages came back by themselves (each within 10 s of playing again, above); how long the
        # whole restart took is a figure, not a bound of this test (a loaded run took 10.4 s).
        back = time.monotonic() - restarted
        await m.rollcall.until(lambda: online(m.rollcall, A) and online(m.rollcall, B), within=10)

        async with m.srv.app[DB]() as db:
            rows = {r["code"]: r for r in await live_store.attendance_rows(db, m.mid)}
        for code in (A, B):
            spans = rows[code]["intervals"]
            assert len(spans) == 2, (code, spans)
            (joined1, left1), (joined2, left2) = spans
            assert left1 is not None and left2 is None, (code, spans)
            assert joined1 < left1 < joined2, (code, spans)  # the gap is on record
        # The chair's attendance export says the same: two connections each, "Số lần kết nối" = 2.
        resp = await m.chair_api.get(f"/meetings/{m.mid}/attendance.csv")
        assert resp.status == 200
        exported = {row["Mã đơn vị"]: row for row in csv.DictReader(io.StringIO((await resp.text()).lstrip("\ufeff")))}
        for code in (A, B):
            assert exported[code]["Số lần kết nối"] == "2", exported[code]
            assert exported[code]["Các khoảng kết nối"].count("–") == 2, exported[code]
        stats = await player_stats(m.site_b)
        assert stats is not None and stats["state"] == "connected"
        print(f"communes playing again {back:.2f} s after Phú Thọ's bridge restarted")


@pytest.mark.solo
async def test_floor_holders_bridge_dies_and_comes_back(server_factory: Any, sqlite_url: str, tmp_path: Path) -> None:
    """Phú Thọ's bridge dies while its commune A holds the floor: the centre stops showing A's
    last frame and falls back to the chair (it does not wait ~30 s for ICE consent to fail), and
    after the restart A is back on air at B and at the chair, the floor never having moved."""
    async with media_meeting(server_factory, sqlite_url, tmp_path) as m:
        await plays(m.site_b, CHAIR_SIZE, 20, what="commune B plays the chair")
        await m.chair.locator("#grant-form input[name=unit]").fill(A)
        await m.chair.locator("#grant-form button[type=submit]").click()
        await asyncio.gather(shows(m.site_b, SITE_SEEN, 5, "commune B sees commune A"),
                             shows(m.chair, SITE_SEEN, 5, "the chair sees commune A"))

        await m.province.kill()
        try:
            await plays(m.chair, CHAIR_SEEN, 10, frames=5, what="the chair's own picture after A's bridge died",
                        audio=False)
        except AssertionError:
            print("central bridge, last lines:\n" + "".join(m.central.lines[-60:]))
            print("province bridge (killed), last lines:\n" + "".join(m.province.lines[-60:]))
            raise

        await m.province.start()
        await plays(m.site_b, SITE_SEEN, 10, what="commune B sees commune A again")
        await plays(m.chair, SITE_SEEN, 15, what="the chair sees commune A again")
        assert await m.site_a.evaluate("!!window.__media.publisher?.video")
