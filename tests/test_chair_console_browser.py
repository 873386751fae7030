"""#14: the chair console on one screen, in real Chromium at 1440×900, 1920×1080 and a phone
(390×844). Without scrolling, the programme video, the floor controls, the hand queue (a raised
hand with its province and how long it has waited) and the roll-call summary lie inside the window;
a province's drill-down opens beside the roll call; the floor is granted by picking a site by name
(a site that is not connected asks for confirmation); a picker query that matches nothing says so.
Each run saves var/screenshots/chair-<w>x<h>.png for people to look at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Dialog, Page, expect

from tests.browser_util import chromium, login, new_page
from tests.conftest import LiveServer
from tests.live_util import schedule, set_state

pytestmark = pytest.mark.browser

WAIT = 5_000
SHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"
# What the chair must see at once: the programme, the floor controls, the hand queue, the roll call.
LIVE_PARTS = {
    "programme video": "#programme",
    "who holds the floor": "#floor",
    "floor controls": "#floor-controls",
    "grant by name": "#grant-form",
    "revoke": "#revoke-btn",
    "mute all": "#mute-all-btn",
    "hand queue": "#hands-panel",
    "raised hand": '#hands li[data-unit="08707"]',
    "roll-call summary": "#rollcall-panel",
    "Phú Thọ's roll-call row": '#provinces tr[data-province="25"]',
}
BOX = """(sel) => { const r = document.querySelector(sel).getBoundingClientRect();
  return {top: r.top, left: r.left, bottom: r.bottom, right: r.right, width: r.width, height: r.height,
          vw: window.innerWidth, vh: window.innerHeight, scrollY: window.scrollY}; }"""


async def box(page: Page, selector: str) -> dict[str, float]:
    return dict(await page.evaluate(BOX, selector))


async def assert_on_screen(page: Page, what: str, selector: str) -> dict[str, float]:
    b = await box(page, selector)
    assert b["scrollY"] == 0, f"the page was scrolled ({b['scrollY']} px)"
    assert b["width"] > 0 and b["height"] > 0, f"{what} ({selector}) is not shown: {b}"
    assert b["top"] >= 0 and b["left"] >= 0, f"{what} ({selector}) starts outside the window: {b}"
    assert b["bottom"] <= b["vh"] + 0.5 and b["right"] <= b["vw"] + 0.5, \
        f"{what} ({selector}) ends outside the {b['vw']}×{b['vh']} window: {b}"
    return b


async def raise_hand_minutes_ago(srv: LiveServer, username: str, mid: int, minutes: int) -> None:
    """The site raises its hand with the server's clock set back, so it has waited ``minutes``."""
    site = await srv.login(username)
    srv.clock.advance(minutes=-minutes)
    try:
        resp = await site.api("POST", f"/api/meetings/{mid}/hand", json={"up": True})
        assert resp.status == 200, await resp.text()
    finally:
        srv.clock.advance(minutes=minutes)


@pytest.mark.parametrize(("width", "height"), [(1440, 900), (1920, 1080), (1280, 720), (390, 844)])
async def test_chair_console_on_one_screen(live_sqlite: LiveServer, width: int, height: int) -> None:
    srv = live_sqlite
    chair_api = await srv.login("chutri")
    mid = await schedule(chair_api, title="Hội nghị trực tuyến toàn quốc triển khai Đề án 06")
    await set_state(chair_api, mid, "rehearsal", "live")
    phone = width < 600
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with chromium() as browser:
        chair = await new_page(browser, width=width, height=height, mobile=phone)
        await login(chair, srv.url, "chutri")
        await chair.goto(f"{srv.url}/meetings/{mid}/chair")
        await expect(chair.locator("#conn")).to_have_attribute("data-state", "open", timeout=WAIT)
        await expect(chair.locator('#provinces tr[data-province="25"]')).to_be_visible(timeout=WAIT)
        await expect(chair.locator("#hands-empty")).to_be_visible()

        # Phường Vĩnh Yên raises its hand (3 minutes ago by the server's clock): it shows at once,
        # with its province and its waiting time, and the queue is cued (sound and highlight).
        await raise_hand_minutes_ago(srv, "vinhyen", mid, 3)
        hand = chair.locator('#hands li[data-unit="08707"]')
        await expect(hand).to_be_visible(timeout=WAIT)
        await expect(hand).to_contain_text("Phường Vĩnh Yên (08707)")
        await expect(hand.locator(".hand-province")).to_have_text(" · Phú Thọ")
        await expect(hand.locator(".hand-wait")).to_have_text("3 phút")
        await expect(hand.locator(".sig")).to_have_attribute("aria-label", "Chưa kết nối")
        await expect(chair.locator("#hands-panel")).to_have_attribute("data-cue", "1")
        await expect(chair.locator("#hand-count")).to_have_text("(1)")
        await expect(chair.locator('#provinces tr[data-province="25"] .mark-hand')).to_have_text("1 giơ tay")

        await chair.screenshot(path=str(SHOTS / f"chair-{width}x{height}.png"))  # the window, as the chair sees it
        for what, selector in LIVE_PARTS.items():
            if phone and selector.startswith("#provinces tr"):
                continue  # a phone shows the summary's first rows; the rest scroll inside it
            await assert_on_screen(chair, what, selector)
        if not phone:  # the whole console is one window: nothing below the fold
            height_used = await chair.evaluate("document.documentElement.scrollHeight")
            assert height_used <= height, f"the page is {height_used} px tall in a {height} px window"

        # A province's drill-down opens beside the roll call, inside the window.
        await chair.locator('#provinces tr[data-province="25"]').click()
        await expect(chair.locator("#drill")).to_be_visible()
        await expect(chair.locator("#drill-title")).to_have_text("Điểm danh: Phú Thọ")
        row = chair.locator('#seats tr[data-unit="08707"]')
        await expect(row).to_be_visible()
        await expect(row.locator("[data-signal]")).to_have_attribute("data-signal", "off")
        if not phone:
            drill = await assert_on_screen(chair, "drill-down", "#drill")
            await assert_on_screen(chair, "drill-down row", '#seats tr[data-unit="08707"]')
            roll = await box(chair, "#rollcall-panel")
            assert drill["left"] >= roll["right"] - 1, f"the drill-down is not beside the roll call: {drill} {roll}"
            await assert_on_screen(chair, "roll-call summary, drill-down open", "#rollcall-panel")
            await chair.screenshot(path=str(SHOTS / f"chair-{width}x{height}-drill.png"))

        # A picker query that matches nothing says so; odd characters are just text.
        grant = chair.locator("#grant-unit")
        await grant.fill("xyz <b>'%\"; --")
        status = chair.locator("#grant-form .picker-status")
        await expect(status).to_have_text("Không tìm thấy đơn vị nào khớp «xyz <b>'%\"; --».")
        await expect(chair.locator("#grant-form [role=option]")).to_have_count(0)

        # Granting by name (typed without diacritics): Vĩnh Yên is not connected, so the chair confirms.
        await grant.fill("vinh yen")
        option = chair.locator('#grant-form [role=option][data-code="08707"]')
        await expect(option).to_contain_text("Phú Thọ")
        await expect(grant).to_have_attribute("aria-expanded", "true")
        await option.click()
        await expect(grant).to_have_value("Phường Vĩnh Yên — Phú Thọ")
        asked: list[str] = []

        async def accept(dialog: Dialog) -> None:
            asked.append(dialog.message)
            await dialog.accept()

        chair.on("dialog", accept)
        await chair.locator("#grant-form button[type=submit]").click()
        await expect(chair.locator("#floor-holder")).to_have_attribute("data-unit", "08707", timeout=WAIT)
        assert len(asked) == 1 and "kết nối" in asked[0], asked
        await expect(chair.locator("#hands li")).to_have_count(0, timeout=WAIT)
        await expect(grant).to_have_value("")


async def test_conclusion_units_picked_by_name(live_sqlite: LiveServer) -> None:
    """The conclusions form finds units by name (province shown) through the server's search,
    limited to the chair's subtree; a query matching nothing says so."""
    srv = live_sqlite
    chair_api = await srv.login("chutri")
    mid = await schedule(chair_api)
    await set_state(chair_api, mid, "rehearsal", "live")
    async with chromium() as browser:
        chair = await new_page(browser, width=1440, height=900)
        await login(chair, srv.url, "chutri")
        await chair.goto(f"{srv.url}/meetings/{mid}/chair")
        units = chair.get_by_label("Giao cho các đơn vị (tìm theo tên)")
        await expect(units).to_have_attribute("role", "combobox")  # the picker is mounted
        await units.fill("Không có đơn vị này ' % _ <script>")
        await expect(chair.locator("#conclusion-form .picker-status").first).to_contain_text(
            "Không tìm thấy đơn vị nào khớp")
        await units.fill("phuc yen")
        option = chair.locator('#conclusion-form [role=option][data-code="08740"]')
        await expect(option).to_contain_text("Phú Thọ")
        await units.press("ArrowDown")
        await units.press("Enter")
        await expect(chair.locator('#conclusion-form .picker-chips li[data-code="08740"]')).to_contain_text(
            "Phường Phúc Yên (Phú Thọ)")
        await expect(chair.locator("#conclusion-form input[name=units]")).to_have_value("08740")
        # Every level offered exists in the tree (the test tree has a legacy district).
        options: Any = await chair.locator("select[name=every_level] option").evaluate_all(
            "(os) => os.map((o) => o.value)")
        assert options == ["", "province", "district", "commune"], options
