"""#14, the province console in real headless Chromium, with the central bridge (BCA) and Phú Thọ's
bridge (25, cascading from it) as real processes, and Phú Thọ given three more communes:

- the console plays the programme (the chair's camera) from the province's own bridge: the video's
  time advances and it has a picture;
- its communes with filters (not connected, hand up, absent, poor connection), a search by name
  that ignores accents and takes odd characters harmlessly, and sorting;
- several communes attending in person are picked and marked "có mặt tại chỗ" at once;
- "Gọi" on a commune: that commune's open site page shows that Phú Thọ is calling it;
- no sideways scroll at 1440×900, 1920×1080 and 390×844 (screenshots under var/screenshots/).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from server.db import transaction
from server.services.media import bridge_key
from server.state import DB
from sessions.store import units as units_store
from sessions.units import Level, UnitRow
from tests.browser_util import chromium, chromium_path, login, new_page, shot
from tests.conftest import LiveServer
from tests.live_util import free_port, schedule, set_state
from tests.media_browser_util import Bridge, WallClock, add_site_operator, bridge_token, camera_script, plays
from tests.site_layout_util import SIZES, no_sideways_scroll, screenshot, until_true

pytestmark = pytest.mark.browser
WAIT = 15_000
CHAIR_SIZE = (640, 480)
SITE_SIZE = (480, 360)
VY, PY = "08707", "08740"
EXTRA = [("08716", "Xã Kim Long"), ("08719", "Xã Đạo Trù"), ("08722", "Xã Đại Đình")]


async def open_page(browser: Any, srv: LiveServer, username: str, path: str, width: int = 1440,
                    height: int = 900, size: tuple[int, int] | None = None) -> Page:
    page = await new_page(browser, width=width, height=height)
    await page.context.add_init_script(camera_script(size))
    await login(page, srv.url, username)
    await page.goto(f"{srv.url}{path}")
    return page


def filter_by(page: Page, label: str) -> Any:
    """A filter's radio button by its label (which ends with its count)."""
    return page.get_by_role("radio", name=re.compile(f"^{label} ")).first


def rows(page: Page) -> Any:
    return page.locator("#seats tbody tr")


async def shown_codes(page: Page) -> list[str]:
    return [c for c in await rows(page).evaluate_all("rs => rs.map(r => r.dataset.unit)") if c != "25"]


async def test_province_console(server_factory: Any, sqlite_url: str, tmp_path: Path) -> None:
    chromium_path()  # skip (locally) or fail (in CI) before starting anything when Chromium is missing
    central_port, province_port = free_port(), free_port()
    srv: LiveServer = await server_factory(
        sqlite_url, clock=WallClock(),
        bridges=f"BCA=http://127.0.0.1:{central_port}, 25=http://127.0.0.1:{province_port}")
    async with transaction(srv.app[DB]) as db:
        await units_store.import_units(db, [UnitRow(code, name, Level.COMMUNE, "25") for code, name in EXTRA])
    central = Bridge("BCA", central_port, srv.url, await bridge_token(srv, "BCA"), bridge_key(srv.settings, "BCA"),
                     tmp_path / "bridge-BCA.log")
    province = Bridge("25", province_port, srv.url, await bridge_token(srv, "25"), bridge_key(srv.settings, "25"),
                      tmp_path / "bridge-25.log", upstream=central.url)
    chair_api = await srv.login("chutri")
    _CHAIR[srv.url] = chair_api
    await add_site_operator(srv, "phucyen", PY)
    try:
        await asyncio.gather(central.start(), province.start())
        mid = await schedule(chair_api, title="Hội nghị trực tuyến toàn quốc: bàn điều khiển tỉnh")
        await set_state(chair_api, mid, "rehearsal", "live")
        async with chromium() as browser:
            await open_page(browser, srv, "chutri", f"/meetings/{mid}/chair")
            console = await open_page(browser, srv, "phutho", f"/meetings/{mid}/province/25")
            try:
                await check_console(browser, srv, mid, console)
            except BaseException:
                with contextlib.suppress(Exception):
                    await shot(console, tmp_path, "province-failed")
                raise
    finally:
        await asyncio.gather(province.stop(), central.stop())


_CHAIR: dict[str, Any] = {}


def srv_api(srv: LiveServer) -> Any:
    return _CHAIR[srv.url]


async def check_console(browser: Any, srv: LiveServer, mid: int, console: Page) -> None:
    # ---- The programme, from Phú Thọ's own bridge.
    await plays(console, CHAIR_SIZE, 30, what="the province console plays the chair", audio=False)
    grant = await console.evaluate("window.__media.grant")
    assert grant["bridge"]["unit"] == "25", grant
    t0 = await console.evaluate("document.querySelector('#programme').currentTime")
    await until_true(console, "(t0) => document.querySelector('#programme').currentTime > t0 + 0.5", arg=t0)
    assert await console.evaluate("document.querySelector('#programme').videoWidth") == CHAIR_SIZE[0]
    await expect(console.locator("#slide-control")).to_be_attached()

    # ---- Vĩnh Yên opens its page: online; the other four communes are not.
    site = await open_page(browser, srv, "vinhyen", f"/meetings/{mid}/site", size=SITE_SIZE)
    await expect(console.locator(f'#seats tr[data-unit="{VY}"]')).to_have_attribute("data-online", "1", timeout=WAIT)
    assert sorted(await shown_codes(console)) == sorted([VY, PY, *(c for c, _ in EXTRA)])
    # sorted by name, in Vietnamese order (Đ after D, before K)
    assert await shown_codes(console) == [PY, VY, "08722", "08719", "08716"]

    # ---- Filters, search, sorting.
    await filter_by(console, "Chưa kết nối").check()
    await expect(rows(console)).to_have_count(4)
    assert VY not in await shown_codes(console)
    await console.get_by_label("Tìm theo tên hoặc mã").fill("phuc yen")  # no accents: still found
    await expect(rows(console)).to_have_count(1)
    assert await shown_codes(console) == [PY]
    await filter_by(console, "Tất cả").check()
    await console.get_by_label("Tìm theo tên hoặc mã").fill("vĩnh")
    assert await shown_codes(console) == [VY]
    for odd in ('<img src=x onerror="window.__odd=1">', ".*", "%_", "[(", "\\", "'; --"):
        await console.get_by_label("Tìm theo tên hoặc mã").fill(odd)
        await expect(rows(console)).to_have_count(0)
        await expect(console.locator("#no-match")).to_be_visible()
    assert await console.evaluate("window.__odd === undefined")
    await console.get_by_label("Tìm theo tên hoặc mã").fill("")
    await filter_by(console, "Vắng").check()
    await expect(rows(console)).to_have_count(0)
    await filter_by(console, "Đang giơ tay").check()
    await expect(rows(console)).to_have_count(0)
    await site.get_by_role("button", name="Giơ tay xin phát biểu").click()
    await expect(rows(console)).to_have_count(1, timeout=WAIT)
    assert await shown_codes(console) == [VY]
    await filter_by(console, "Kết nối kém").check()
    await expect(rows(console)).to_have_count(0)
    await filter_by(console, "Tất cả").check()
    await console.get_by_label("Sắp xếp theo").select_option("connection")
    assert (await shown_codes(console))[-1] != VY or len(await shown_codes(console)) == 1
    await console.get_by_label("Sắp xếp theo").select_option("name")

    # ---- Three communes attend in person: pick them, mark them at once.
    picked = [c for c, _ in EXTRA]
    for code in picked:
        await console.locator(f'#seats tr[data-unit="{code}"] input.pick').check()
    bulk = console.locator("#bulk-in-person")
    await expect(bulk).to_have_text("Đánh dấu “có mặt tại chỗ” cho 3 điểm cầu đã chọn")
    await bulk.click()
    for code in picked:
        await expect(console.locator(f'#seats tr[data-unit="{code}"]')).to_have_attribute(
            "data-status", "present_in_person", timeout=WAIT)
    await expect(console.locator(f'#seats tr[data-unit="{PY}"]')).to_have_attribute("data-status", "not_called")
    await expect(console.locator("#bulk-status")).to_have_text("Đã ghi “có mặt tại chỗ” cho 3/3 điểm cầu.")
    # "select every shown": with the filter "not connected" only Phúc Yên is left to pick
    await filter_by(console, "Chưa kết nối").check()
    await console.get_by_label("Chọn mọi điểm cầu đang hiện (chưa kết nối)").check()
    await expect(bulk).to_have_text("Đánh dấu “có mặt tại chỗ” cho 1 điểm cầu đã chọn")
    await console.get_by_label("Chọn mọi điểm cầu đang hiện (chưa kết nối)").uncheck()
    await expect(bulk).to_be_disabled()
    await filter_by(console, "Tất cả").check()

    # ---- Phú Thọ calls Vĩnh Yên: the commune's page says so.
    notice = site.locator("#call-notice")
    await expect(notice).to_be_hidden()
    await console.locator(f'#seats tr[data-unit="{VY}"]').get_by_role("button", name="Gọi").click()
    await expect(notice).to_be_visible(timeout=5_000)
    await expect(site.locator("#call-text")).to_have_text("Phú Thọ đang gọi điểm cầu Phường Vĩnh Yên")
    await expect(console.locator(f'#seats tr[data-unit="{VY}"] .called-at')).to_contain_text("Đã gọi")
    await screenshot(site, "site-called-1440x900")

    # ---- A site that has not checked its camera and microphone sends nothing, even with the floor;
    # "Vào hội nghị" sends. (Vĩnh Yên's tab passed the check before: camera_script remembers it.)
    phucyen = await new_page(browser)
    await login(phucyen, srv.url, "phucyen")
    await phucyen.goto(f"{srv.url}/meetings/{mid}/site")
    await expect(phucyen.locator("#prejoin")).to_have_attribute("data-devices", "ok", timeout=WAIT)
    await expect(console.locator(f'#seats tr[data-unit="{PY}"]')).to_have_attribute("data-online", "1", timeout=WAIT)
    resp = await srv_api(srv).api("POST", f"/api/meetings/{mid}/floor", json={"action": "grant", "unit": PY})
    assert resp.status == 200, await resp.text()
    await expect(phucyen.locator("#my-floor")).to_be_visible(timeout=WAIT)
    await expect(phucyen.locator("#floor-join-hint")).to_be_visible()
    await asyncio.sleep(2)
    assert await phucyen.evaluate("!window.__media.publisher"), "nothing sent before the device check"
    await phucyen.get_by_role("button", name="Vào hội nghị").click()
    await until_true(phucyen, "() => Boolean(window.__media.publisher?.video)")
    await expect(phucyen.locator("#floor-join-hint")).to_be_hidden()
    # The floor to Vĩnh Yên: the province console shows its picture, through Phú Thọ's bridge.
    resp = await srv_api(srv).api("POST", f"/api/meetings/{mid}/floor", json={"action": "grant", "unit": VY})
    assert resp.status == 200, await resp.text()
    await plays(console, SITE_SIZE, 15, what="the province console plays Vĩnh Yên", audio=False)

    # ---- Every size: nothing scrolls sideways; the screenshots.
    for width, height in SIZES:
        await console.set_viewport_size({"width": width, "height": height})
        await asyncio.sleep(0.3)
        sizes = await no_sideways_scroll(console)
        await screenshot(console, f"province-{width}x{height}")
        assert sizes["scroll"] <= sizes["inner"], (width, height, sizes)
