"""#14, the site page in real headless Chromium at 1440×900, 1920×1080 and 390×844, with the demo's KPI
figures (values, targets, ranks, change since the previous meeting, six-month trends):

- the programme and the KPI slide side by side on wide screens, stacked on the phone; no sideways
  scroll, and no KPI cell narrower than its longest word or chart (nothing broken one word a line,
  nothing cut off);
- the check of camera and microphone before joining: device pickers filled from enumerateDevices,
  the level meter moving with the (fake) microphone, then "Vào hội nghị"; the site sends nothing
  before that;
- every button says what it does;
- when the chair ends the meeting the video stops and the page links to the minutes, which open.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import Page, expect

from demo import kpi as demo_kpi
from server.db import transaction
from server.state import DB
from tests.browser_util import chromium, login, new_page
from tests.conftest import LiveServer
from tests.live_util import schedule, set_state
from tests.site_layout_util import SIZES, narrow_cells, no_sideways_scroll, screenshot, until_true

pytestmark = pytest.mark.browser
WAIT = 10_000


# A tab that has passed the device check (prejoin.js keeps the choice in sessionStorage).
JOINED = """try { sessionStorage.setItem("hoinghi.prejoin",
  '{"video":null,"audio":null,"cameraLabel":"fake_device_0","micLabel":"Fake Default Audio Input"}'); } catch {}"""


async def open_site(browser: Any, srv: LiveServer, mid: int, width: int, height: int, joined: bool = False) -> Page:
    page = await new_page(browser, width=width, height=height, mobile=width < 600)
    if joined:
        await page.context.add_init_script(JOINED)
    await login(page, srv.url, "vinhyen")
    await page.goto(f"{srv.url}/meetings/{mid}/site")
    await expect(page.locator("#site-slide table.kpi-slide tbody tr").first).to_be_visible(timeout=WAIT)
    await expect(page.locator("#site-slide td.trend canvas").first).to_be_attached(timeout=WAIT)
    return page


async def test_site_page_fits_every_screen_and_checks_devices_first(live_sqlite: LiveServer) -> None:
    srv = live_sqlite
    async with transaction(srv.app[DB]) as db:
        await demo_kpi.load(db, "BCA", srv.clock())
    chair = await srv.login("chutri")
    mid = await schedule(chair, title="Hội nghị giao ban trực tuyến toàn quốc về Đề án 06")
    await set_state(chair, mid, "rehearsal", "live")
    async with chromium() as browser:
        for width, height in SIZES:  # as the meeting runs: the site has joined
            page = await open_site(browser, srv, mid, width, height, joined=True)
            await expect(page.locator("#prejoin")).to_have_attribute("data-phase", "joined")
            sizes = await no_sideways_scroll(page)
            narrow = await narrow_cells(page, "#site-slide")
            await screenshot(page, f"site-{width}x{height}")
            assert sizes["scroll"] <= sizes["inner"], (width, height, sizes)
            assert not narrow, (width, height, narrow)
            video = await page.locator("#programme").bounding_box()
            slide = await page.locator(".slide-panel").bounding_box()
            assert video and slide
            if width >= 1440:  # side by side: the slide to the right of the video, both begin in the first screen
                assert slide["x"] >= video["x"] + video["width"], (width, video, slide)
                assert slide["y"] < height and video["y"] < height
            else:  # stacked: the slide below the video
                assert slide["y"] >= video["y"] + video["height"], (width, video, slide)
            await page.context.close()

        # ---- The check of camera and microphone, then joining.
        page = await open_site(browser, srv, mid, 1440, 900)
        card = page.locator("#prejoin")
        await expect(card).to_have_attribute("data-devices", "ok", timeout=WAIT)
        await screenshot(page, "site-prejoin-1440x900")
        assert await page.locator("#cam-select option").count() >= 1
        assert await page.locator("#mic-select option").count() >= 1
        assert await page.locator("#cam-select").is_enabled() and await page.locator("#mic-select").is_enabled()
        # the fake microphone beeps: the meter moves
        await expect(page.locator("#mic-level")).not_to_have_attribute("data-peak", "0", timeout=WAIT)
        await until_true(page, "() => Number(document.querySelector('#mic-level').dataset.peak) > 0.01")
        assert await page.evaluate("!window.__media.publisher"), "nothing is sent before the check"
        # every button says what it does
        assert await page.locator("#join-btn").inner_text() == "Vào hội nghị"
        assert await page.locator("#mute-btn").inner_text() == "Tắt micrô của điểm cầu"
        assert await page.locator("#unmute-btn").inner_text() == "Bật lại micrô của điểm cầu"
        assert await page.locator("#sound-btn").inner_text() == "Phát âm thanh hội nghị"
        await page.get_by_role("button", name="Vào hội nghị").click()
        await expect(page.locator("#prejoin-done")).to_be_visible()
        await expect(page.locator("#prejoin-check")).to_be_hidden()
        await expect(page.locator("#prejoin-summary")).to_contain_text("Đã vào hội nghị")
        assert await page.evaluate("!window.__media.held")
        # a reload in the same tab does not ask again
        await page.reload()
        await expect(page.locator("#prejoin-done")).to_be_visible(timeout=WAIT)
        await expect(page.locator("#prejoin")).to_have_attribute("data-phase", "joined")

        # ---- The chair ends the meeting: the video stops, the page links to the minutes.
        await set_state(chair, mid, "concluded")
        ended = page.locator("#media-ended")
        await expect(ended).to_be_visible(timeout=WAIT)
        await expect(page.locator("#programme")).to_have_attribute("data-stopped", "1")
        assert await page.evaluate("document.querySelector('#programme').srcObject === null")
        link = page.get_by_role("link", name="Xem biên bản hội nghị")
        assert await link.get_attribute("href") == f"/meetings/{mid}/minutes"
        await asyncio.sleep(0)
        async with page.expect_navigation():
            await link.click()
        assert page.url.endswith(f"/meetings/{mid}/minutes")
        await expect(page.locator("h1")).to_be_visible()
        assert "Không tìm thấy" not in await page.locator("main").inner_text()
