"""Put a slide on every screen, in real browsers (issue #14 item 4): the chair's console shows the
national slide, then one province's, on two site pages of different provinces, and "each its own"
restores them; a province operator's push reaches its own communes and not another province's; a
site operator's push is refused with the server's message and changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser_util import chromium, login, new_page, shot
from tests.conftest import LiveServer
from tests.live_util import schedule, set_state

pytestmark = pytest.mark.browser

# ms: how long a site page may take to follow a push through the live hub. How fast it does is
# bench/slide_push.py's figure; this only has to outlast a loaded CI machine.
FOLLOW = 15_000
PARTICIPANTS = [{"unit": "01", "levels": ["province", "commune"]}, {"unit": "25", "levels": ["province", "commune"]}]


async def open_as(browser: Browser, base_url: str, username: str, path: str) -> Page:
    page = await new_page(browser, width=1440, height=900)
    await login(page, base_url, username)
    await page.goto(f"{base_url}{path}")
    # as a user waits for "Đã kết nối": an action sent before the live connection is open is refused
    # with "not connected" on the page (what a click too early gets)
    await expect(page.locator("#conn")).to_have_attribute("data-state", "open", timeout=FOLLOW)
    return page


async def showing(page: Page, code: str, pushed: str) -> None:
    """The site's slide is ``code``'s (rendered from its topic), pushed as ``pushed`` ("" = own)."""
    await page.wait_for_function(
        "([code, pushed]) => { const s = document.getElementById('site-slide');"
        " return s && s.dataset.slideUnit === code && s.dataset.pushed === pushed; }",
        arg=[code, pushed], timeout=FOLLOW)


async def push_seq(page: Page) -> int:
    return int(await page.get_attribute("#site-slide", "data-push-seq") or -1)


async def test_slides_pushed_to_site_pages(live_sqlite: LiveServer, tmp_path: Path) -> None:
    srv = live_sqlite
    chair_api = await srv.login("chutri")
    mid = await schedule(chair_api, PARTICIPANTS, title="Giao ban trình chiếu")
    await set_state(chair_api, mid, "rehearsal", "live")
    async with chromium() as browser:
        chair = await open_as(browser, srv.url, "chutri", f"/meetings/{mid}/chair")
        hoankiem = await open_as(browser, srv.url, "hoankiem", f"/meetings/{mid}/site")  # Hà Nội
        vinhyen = await open_as(browser, srv.url, "vinhyen", f"/meetings/{mid}/site")  # Phú Thọ
        sites = {hoankiem: "00070", vinhyen: "08707"}
        for site, own in sites.items():
            await showing(site, own, "")
            await expect(site.locator("#slide-pushed")).to_be_hidden()

        control = chair.locator("#slide-control")
        await expect(control.locator("#slide-control-state")).to_have_text("Mỗi điểm cầu đang xem slide của mình.")
        # The national ranking slide on every screen.
        await control.get_by_role("button", name="Trình chiếu slide toàn quốc").click()
        for site in sites:
            await showing(site, "BCA", "BCA")
            await expect(site.locator("#slide-pushed")).to_have_text(
                "Đang trình chiếu: slide toàn quốc (Bộ Công an) — do Bộ Công an trình chiếu")
            await expect(site.locator("#site-slide table.kpi-ranking")).to_be_visible()  # the provinces ranked
        await expect(control.locator("#slide-control-state")).to_contain_text("slide toàn quốc")
        await shot(vinhyen, tmp_path, "slide-push-site-national")

        # One province's slide, picked by name.
        await control.locator("#slide-unit").select_option(label="Phú Thọ (25)")
        await control.get_by_role("button", name="Trình chiếu slide của đơn vị đã chọn").click()
        for site in sites:
            await showing(site, "25", "25")
            await expect(site.locator("#slide-pushed")).to_contain_text("slide của Phú Thọ")
        await shot(chair, tmp_path, "slide-push-chair")

        # Each site its own slide again.
        await control.get_by_role("button", name="Mỗi điểm cầu xem slide của mình").click()
        for site, own in sites.items():
            await showing(site, own, "")
            await expect(site.locator("#slide-pushed")).to_be_hidden()

        # Phú Thọ's operator pushes its slide: its commune follows, Hà Nội's does not.
        province = await open_as(browser, srv.url, "phutho", f"/meetings/{mid}/province/25")
        await province.locator("#slide-control").get_by_role("button", name="Trình chiếu slide của tỉnh").click()
        await showing(vinhyen, "25", "25")
        await expect(vinhyen.locator("#slide-pushed")).to_contain_text("do Phú Thọ trình chiếu")
        seq = await push_seq(vinhyen)
        await hoankiem.wait_for_function(  # Hà Nội's page has seen the same push state...
            "seq => Number(document.getElementById('site-slide').dataset.pushSeq) >= seq", arg=seq, timeout=FOLLOW)
        await showing(hoankiem, "00070", "")  # ...and kept its own slide
        await shot(province, tmp_path, "slide-push-province")

        # A site operator cannot push: the server's message, and nothing changes.
        answer = await vinhyen.evaluate("""mid => new Promise((resolve, reject) => {
            const ws = new WebSocket(`ws://${location.host}/ws`);
            ws.onopen = () => ws.send(JSON.stringify({type: "action", meeting: mid, action: "show_slide", id: 1}));
            ws.onmessage = (e) => { const m = JSON.parse(e.data); if (m.id === 1) { ws.close(); resolve(m); } };
            ws.onerror = () => reject(new Error("websocket failed"));
        })""", mid)
        assert answer["type"] == "error" and answer["code"] == "forbidden", answer
        assert answer["message"].startswith("Chỉ chủ trì hội nghị"), answer
        assert await push_seq(vinhyen) == seq and await push_seq(hoankiem) == seq
        await showing(vinhyen, "25", "25")
        await showing(hoankiem, "00070", "")
