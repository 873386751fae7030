"""#16, the mosaic in real headless Chromium, through real bridge processes: the central bridge (BCA)
and Phú Thọ's (25, cascading from it).

- Hà Nội (01, served by the central bridge) and Phú Thọ (25, behind its own bridge) open their site
  pages in a live meeting: without the floor each sends its microphone and its camera's low
  rendition only (``?thumbnail=1``); Hồ Chí Minh City (79) opens its page on a machine without a
  camera: it sends its microphone alone, as before #16.
- The chair console (1280×720) switches its stage to "Khảm hình": one tile per province, labelled
  with its name; Hà Nội's and Phú Thọ's tiles play live (frames decoded keep growing, the video's
  time advances) at the low size (320×240 from a 640×480 camera); Hồ Chí Minh City's says
  "Chưa có hình"; the page still fits the window.
- A click on Phú Thọ's tile previews it: a larger picture that plays, with its sound; "Trao quyền
  phát biểu" beside it gives Phú Thọ the floor: Phú Thọ then sends both renditions, the preview
  plays on, and when the floor is taken back Phú Thọ returns to its thumbnail.
- Phú Thọ's province console shows its communes page by page the same way, connected ones first:
  Vĩnh Yên (publishing) plays, Phúc Yên (not open) says "Chưa có hình".
- The rendition a site receives, as its bridge reports it (``layer`` of the ``stats`` message on the
  control channel, sent here by a socket holding Phú Thọ's bridge token): "Hình thấp" / "Chỉ âm
  thanh" on the chair's roll-call row and drill-down and on the province console's row, and the
  site page's own "Đường truyền yếu" notice; back on the high rendition, they go.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, expect

from server.auth import issue_machine_token
from server.db import transaction
from server.services.media import bridge_key
from server.state import DB
from sessions.store import units as units_store
from sessions.units import Level, UnitRow
from tests.browser_util import chromium, chromium_path, login, new_page, shot
from tests.conftest import LiveServer
from tests.live_util import WsClient, free_port, schedule, set_state
from tests.media_browser_util import Bridge, WallClock, add_site_operator, bridge_token, camera_script
from tests.site_layout_util import until_true

pytestmark = pytest.mark.browser

CAMERA = (640, 480)
LOW = (320, 240)  # the low rendition: the camera scaled down by 2
WAIT = 30_000

# A mosaic tile's (or the preview's) player, as the viewer gets it: frames decoded and their size,
# audio packets, the <video>'s own time, size and on-screen width.
TILE = """async ({code, preview}) => {
  const m = window.__mosaic;
  const handle = preview ? m?.preview.handle : m?.mosaic.tiles.get(code)?.handle;
  const video = preview ? m?.preview.video : m?.mosaic.tiles.get(code)?.video;
  if (!handle || !video) return null;
  const out = {frames: 0, width: 0, height: 0, audio: 0, time: video.currentTime, videoWidth: video.videoWidth,
               videoHeight: video.videoHeight, muted: video.muted};
  // the picture's width on screen: a tile covers its box, the preview fits its picture inside its own
  const box = video.getBoundingClientRect();
  out.shownWidth = preview && video.videoHeight
    ? Math.min(box.width, box.height * video.videoWidth / video.videoHeight) : box.width;
  (await handle.pc.getStats()).forEach((s) => {
    if (s.type !== "inbound-rtp") return;
    if (s.kind === "video") {
      out.frames += s.framesDecoded || 0;
      if (s.frameWidth) { out.width = s.frameWidth; out.height = s.frameHeight; }
    } else if (s.kind === "audio") out.audio += s.packetsReceived || 0;
  });
  return out;
}"""


async def tile_stats(page: Page, code: str = "", preview: bool = False) -> dict[str, Any] | None:
    result: dict[str, Any] | None = await page.evaluate(TILE, {"code": code, "preview": preview})
    return result


async def live_picture(page: Page, what: str, code: str = "", preview: bool = False, within: float = 45.0,
                       frames: int = 10, audio: bool = False) -> dict[str, Any]:
    """Wait until the tile (or the preview) decodes ``frames`` more frames, its <video>'s time moves
    on (and, with ``audio``, its sound arrives); returns the last figures."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    first: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    while True:
        last = await tile_stats(page, code, preview)
        if last is not None and last["frames"] > 0:
            if first is None or last["frames"] < first["frames"]:
                first = last  # a new connection starts again from 0
            elif (last["frames"] - first["frames"] >= frames and last["time"] > first["time"]
                  and (not audio or last["audio"] > first["audio"])):
                return last
        if loop.time() > deadline:
            raise AssertionError(f"{what}: no moving picture within {within} s; first {first}, last {last}")
        await asyncio.sleep(0.2)


@dataclass
class World:
    srv: LiveServer
    mid: int
    browser: Browser


# A machine without a camera: asking for video fails as Chromium fails it when no camera is plugged in.
NO_CAMERA = """(() => {
  const md = navigator.mediaDevices;
  if (!md) return;
  const original = md.getUserMedia.bind(md);
  md.getUserMedia = async (constraints) => {
    if (constraints && constraints.video) throw new DOMException("Requested device not found", "NotFoundError");
    return original(constraints);
  };
})();"""


async def open_page(browser: Browser, srv: LiveServer, username: str, path: str, width: int = 1280,
                    height: int = 720, camera: bool = True) -> Page:
    page = await new_page(browser, width=width, height=height)
    await page.context.add_init_script(camera_script(CAMERA))
    if not camera:
        await page.context.add_init_script(NO_CAMERA)
    await login(page, srv.url, username)
    await page.goto(f"{srv.url}{path}")
    return page


@contextlib.asynccontextmanager
async def live_meeting(server_factory: Any, sqlite_url: str, tmp_path: Path,
                       more: list[UnitRow] | None = None) -> AsyncIterator[World]:
    chromium_path()  # skip (locally) or fail (in CI) before starting anything when Chromium is missing
    central_port, province_port = free_port(), free_port()
    srv: LiveServer = await server_factory(
        sqlite_url, clock=WallClock(),
        bridges=f"BCA=http://127.0.0.1:{central_port}, 25=http://127.0.0.1:{province_port}")
    if more:
        async with transaction(srv.app[DB]) as db:
            await units_store.import_units(db, more)
    central = Bridge("BCA", central_port, srv.url, await bridge_token(srv, "BCA"), bridge_key(srv.settings, "BCA"),
                     tmp_path / "bridge-BCA.log")
    province = Bridge("25", province_port, srv.url, await bridge_token(srv, "25"), bridge_key(srv.settings, "25"),
                      tmp_path / "bridge-25.log", upstream=central.url)
    try:
        await asyncio.gather(central.start(), province.start())
        chair_api = await srv.login("chutri")
        mid = await schedule(chair_api, title="Hội nghị trực tuyến toàn quốc: khảm hình các tỉnh")
        await set_state(chair_api, mid, "rehearsal", "live")
        async with chromium() as browser:
            yield World(srv, mid, browser)
    finally:
        await asyncio.gather(province.stop(), central.stop())


async def publishes(page: Page, mode: str, what: str) -> None:
    """The page's publication is in ``mode`` ("thumb": microphone and low rendition) and connected."""
    await until_true(page, "(mode) => window.__media?.publisher?.mode === mode"
                           " && window.__media.publisher.pc.connectionState === 'connected'", within=45, arg=mode)
    videos = await page.evaluate("() => window.__media.publisher.pc.getTransceivers()"
                                 ".filter((t) => t.sender.track?.kind === 'video').length")
    assert videos == {"thumb": 1, "full": 2, "mic": 0}[mode], f"{what}: {videos} video m-lines in {mode}"


# Eight more provinces (none opens a page): eleven in all, two pages of nine. Their codes sort between
# Phú Thọ's and Hồ Chí Minh City's: by code alone, Hồ Chí Minh City would be on the second page.
MORE = [UnitRow(f"3{i}", f"Tỉnh thử {i}", Level.PROVINCE, "BCA") for i in range(8)]


async def test_chair_mosaic_of_the_provinces(server_factory: Any, sqlite_url: str, tmp_path: Path) -> None:
    async with live_meeting(server_factory, sqlite_url, tmp_path, more=MORE) as w:
        hanoi = await open_page(w.browser, w.srv, "hanoi", f"/meetings/{w.mid}/site")
        phutho = await open_page(w.browser, w.srv, "phutho", f"/meetings/{w.mid}/site")
        await add_site_operator(w.srv, "hcm", "79")
        hcm = await open_page(w.browser, w.srv, "hcm", f"/meetings/{w.mid}/site", camera=False)
        chair = await open_page(w.browser, w.srv, "chutri", f"/meetings/{w.mid}/chair")
        try:
            await publishes(hanoi, "thumb", "Hà Nội without the floor")
            await publishes(phutho, "thumb", "Phú Thọ without the floor")
            await publishes(hcm, "mic", "Hồ Chí Minh City without a camera")

            await expect(chair.locator("#programme")).to_be_visible()
            await chair.locator("#view-mosaic").click()
            await expect(chair.locator("#mosaic")).to_be_visible()
            await expect(chair.locator("#programme")).to_be_hidden()
            tiles = chair.locator("#mosaic-grid .tile")
            await expect(tiles).to_have_count(9, timeout=WAIT)
            # the connected provinces first (only they can send a picture), then by code
            assert await tiles.evaluate_all("(ts) => ts.map((t) => t.dataset.unit)") == [
                "01", "25", "79", *(f"3{i}" for i in range(6))]
            await expect(chair.locator("#mosaic-nav .mosaic-page")).to_have_text("Trang 1/2")
            for code, name in (("01", "Thành phố Hà Nội"), ("25", "Phú Thọ"), ("79", "Thành phố Hồ Chí Minh")):
                await expect(chair.locator(f'#mosaic-grid .tile[data-unit="{code}"] .tile-name')).to_have_text(name)

            # Hà Nội (the central bridge's own site) and Phú Thọ (carried up by its bridge) play live,
            # at the low rendition's size; Hồ Chí Minh City sends nothing.
            for code, what in (("01", "Hà Nội's thumbnail"), ("25", "Phú Thọ's thumbnail")):
                got = await live_picture(chair, what, code)
                assert (got["width"], got["height"]) == LOW, (what, got)
                assert (got["videoWidth"], got["videoHeight"]) == LOW, (what, got)
            none = chair.locator('#mosaic-grid .tile[data-unit="79"]')
            await expect(none).to_have_attribute("data-thumb", "none", timeout=WAIT)
            await expect(none.locator(".tile-note")).to_have_text("Chưa có hình")
            # the mosaic fits the 1280×720 console: nothing below the fold
            assert await chair.evaluate("document.documentElement.scrollHeight") <= 720
            await shot(chair, tmp_path, "mosaic-chair")

            # Page 2 plays only its own two tiles: the first page's peers are closed; back on page 1
            # Hà Nội plays again.
            await chair.evaluate("() => { window.__page1 = [...window.__mosaic.mosaic.tiles.values()]"
                                 ".map((t) => t.handle?.pc).filter(Boolean); }")
            assert await chair.evaluate("() => window.__page1.length") >= 2
            await chair.locator('#mosaic-nav button[data-page="next"]').click()
            await expect(chair.locator("#mosaic-nav .mosaic-page")).to_have_text("Trang 2/2")
            await expect(tiles).to_have_count(2)
            assert await tiles.evaluate_all("(ts) => ts.map((t) => t.dataset.unit)") == ["36", "37"]
            assert await chair.evaluate("() => window.__page1.every((pc) => pc.connectionState === 'closed')")
            assert await chair.evaluate("() => window.__mosaic.mosaic.tiles.size") == 2
            await chair.locator('#mosaic-nav button[data-page="1"]').click()
            await expect(tiles).to_have_count(9)
            await live_picture(chair, "Hà Nội's thumbnail, back on page 1", "01")

            # A click previews Phú Thọ: larger, playing, with its sound.
            tile_width = (await tile_stats(chair, "25") or {}).get("shownWidth", 0)
            await chair.locator('#mosaic-grid .tile[data-unit="25"] .tile-open').click()
            box = chair.locator("#mosaic-preview")
            await expect(box).to_be_visible()
            await expect(box.locator(".preview-title")).to_have_text("Xem trước: Phú Thọ")
            seen = await live_picture(chair, "Phú Thọ's preview", preview=True, audio=True)
            assert seen["videoWidth"] > 0 and not seen["muted"], seen
            assert seen["shownWidth"] > 1.3 * tile_width, (seen, tile_width)
            await expect(box).to_have_attribute("data-preview", "playing")
            # the preview and its "Trao quyền phát biểu" lie inside the stage, inside the window
            inside = await chair.evaluate("""() => {
              const stage = document.querySelector("#mosaic").getBoundingClientRect();
              const grant = document.querySelector("#mosaic-preview .preview-grant").getBoundingClientRect();
              return grant.width > 0 && grant.top >= stage.top && grant.bottom <= stage.bottom
                && grant.left >= stage.left && grant.right <= stage.right && grant.bottom <= window.innerHeight;
            }""")
            assert inside, "the preview's grant button is outside the stage"
            await shot(chair, tmp_path, "mosaic-chair-preview")

            # "Trao quyền phát biểu" beside it: Phú Thọ holds the floor and sends both renditions.
            await box.locator(".preview-grant").click()
            await expect(chair.locator("#floor-holder")).to_have_attribute("data-unit", "25", timeout=WAIT)
            await publishes(phutho, "full", "Phú Thọ with the floor")
            await expect(box.locator(".preview-granted")).to_have_text("Đã trao quyền phát biểu cho Phú Thọ.")
            # its new publication replaced the thumbnail one: the preview plays on by itself
            await live_picture(chair, "Phú Thọ's preview once it holds the floor", preview=True, audio=True)
            # the floor taken back: Phú Thọ sends its thumbnail again
            await chair.locator("#revoke-btn").click()
            await expect(chair.locator("#floor-holder")).to_have_attribute("data-unit", "", timeout=WAIT)
            await publishes(phutho, "thumb", "Phú Thọ after the floor")

            # Leaving the mosaic closes its peers.
            await chair.locator("#view-programme").click()
            await expect(chair.locator("#programme")).to_be_visible()
            assert await chair.evaluate("() => window.__mosaic.mosaic.tiles.size") == 0
            assert await chair.evaluate("() => window.__mosaic.preview.handle") is None
        except BaseException:
            for name, page in (("chair", chair), ("hanoi", hanoi), ("phutho", phutho), ("hcm", hcm)):
                with contextlib.suppress(Exception):
                    await shot(page, tmp_path, f"mosaic-failed-{name}")
            raise


async def test_province_console_mosaic_of_its_communes(server_factory: Any, sqlite_url: str,
                                                       tmp_path: Path) -> None:
    async with live_meeting(server_factory, sqlite_url, tmp_path) as w:
        commune = await open_page(w.browser, w.srv, "vinhyen", f"/meetings/{w.mid}/site")
        console = await open_page(w.browser, w.srv, "phutho", f"/meetings/{w.mid}/province/25", 1440, 900)
        try:
            await publishes(commune, "thumb", "Vĩnh Yên without the floor")
            await console.locator("#view-mosaic").click()
            await expect(console.locator("#site-list")).to_be_hidden()
            tiles = console.locator("#mosaic-grid .tile")
            await expect(tiles).to_have_count(2, timeout=WAIT)
            # the connected commune first (Vĩnh Yên), though Phúc Yên comes first by name
            await expect(tiles.first).to_have_attribute("data-unit", "08707", timeout=WAIT)
            got = await live_picture(console, "Vĩnh Yên's thumbnail at its province", "08707")
            assert (got["videoWidth"], got["videoHeight"]) == LOW, got
            await expect(console.locator('#mosaic-grid .tile[data-unit="08740"]')).to_have_attribute(
                "data-thumb", "none", timeout=WAIT)
            await console.locator('#mosaic-grid .tile[data-unit="08707"] .tile-open').click()
            await live_picture(console, "Vĩnh Yên's preview at its province", preview=True, audio=True)
            await expect(console.locator("#mosaic-preview .preview-grant")).to_be_hidden()  # the chair's to give
            await shot(console, tmp_path, "mosaic-province")
        except BaseException:
            for name, page in (("console", console), ("commune", commune)):
                with contextlib.suppress(Exception):
                    await shot(page, tmp_path, f"mosaic-failed-{name}")
            raise


async def bridge_socket(srv: LiveServer, code: str) -> WsClient:
    """The control channel as the bridge of ``code`` holds it (a machine token of scope bridge)."""
    async with transaction(srv.app[DB]) as db:
        unit = await units_store.get_by_code(db, code)
        _tid, token = await issue_machine_token(srv.app, db, name=f"bridge-{code}", unit_id=unit.id,
                                                scopes=frozenset({"bridge"}), days=1, created_by_id=None)
    http = aiohttp.ClientSession(base_url=srv.url, headers={"Authorization": f"Bearer {token}"})
    srv.sessions.append(http)
    return WsClient(await http.ws_connect("/ws"))


async def test_consoles_show_who_receives_the_low_rendition(live_sqlite: LiveServer, tmp_path: Path) -> None:
    srv = live_sqlite
    chair_api = await srv.login("chutri")
    mid = await schedule(chair_api, title="Hội nghị trực tuyến toàn quốc: đường truyền yếu")
    await set_state(chair_api, mid, "rehearsal", "live")
    bridge = await bridge_socket(srv, "25")
    try:
        assert (await bridge.request({"type": "join", "meeting": mid, "unit": "08707"}))["type"] == "result"
        async with chromium() as browser:
            chair = await open_page(browser, srv, "chutri", f"/meetings/{mid}/chair")
            province = await open_page(browser, srv, "phutho", f"/meetings/{mid}/province/25", 1440, 900)
            site = await open_page(browser, srv, "vinhyen", f"/meetings/{mid}/site")
            row = chair.locator('#provinces tr[data-province="25"]')
            await expect(row).to_be_visible(timeout=WAIT)
            await row.click()
            drill = chair.locator('#seats tr[data-unit="08707"]')
            seat = province.locator('#seats tr[data-unit="08707"]')
            await expect(seat).to_have_attribute("data-online", "1", timeout=WAIT)
            notice = site.locator("#my-layer")
            await expect(site.locator("#conn")).to_have_attribute("data-state", "open", timeout=WAIT)
            await expect(notice).to_be_hidden()

            for layer, words, notice_words in (
                    ("low", "Hình thấp", "Đường truyền yếu: đang nhận hình chất lượng thấp"),
                    ("audio", "Chỉ âm thanh", "Đường truyền yếu: chỉ nhận âm thanh, tạm không có hình")):
                stats = {"type": "stats", "meeting": mid, "sites": [
                    {"unit": "08707", "rtt_ms": 380, "loss": 0.04, "kbps": 120, "fps": 12, "layer": layer}]}
                assert (await bridge.request(stats))["type"] == "result"
                await expect(row.locator(f".badge.layer-{layer}")).to_have_text(f"1 {words.lower()}", timeout=WAIT)
                await expect(drill.locator(f".badge.layer-{layer}")).to_have_text(words, timeout=WAIT)
                await expect(seat.locator(f".badge.layer-{layer}")).to_have_text(words, timeout=WAIT)
                await expect(notice).to_have_text(notice_words, timeout=WAIT)
                await expect(notice).to_have_attribute("data-layer", layer)
            await shot(chair, tmp_path, "mosaic-layer-chair")

            # Back on the high rendition: no badge, no notice.
            stats = {"type": "stats", "meeting": mid, "sites": [
                {"unit": "08707", "rtt_ms": 20, "loss": 0.0, "kbps": 900, "fps": 30, "layer": "high"}]}
            assert (await bridge.request(stats))["type"] == "result"
            await expect(notice).to_be_hidden(timeout=WAIT)
            for where in (row, drill, seat):
                await expect(where.locator(".badge.layer")).to_have_count(0, timeout=WAIT)
    finally:
        await bridge.close()
