"""A whole meeting in real browsers: headless Chromium against the live server, one browser
context per person (the chair, two site operators, a province operator), every step through the
pages as people would do it, and every live change seen without a reload.

The server's clock is the injected FakeClock: the test moves it forward between joins and leaves
so the attendance export has distinct, predictable intervals.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from pathlib import Path

import pytest
from playwright.async_api import Browser, Dialog, Page, expect

from server.timefmt import local
from tests.browser_util import chromium, login, new_page, shot
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser

TITLE = "Hội nghị trực tuyến toàn quốc về an ninh trật tự"
WAIT = 5_000  # ms: every live change must show within a few seconds


def hms(at: datetime) -> str:
    return local(at, "%H:%M:%S")


async def open_as(browser: Browser, base_url: str, username: str, path: str) -> Page:
    """A person in their own browser context (own cookies), logged in through the form."""
    page = await new_page(browser)
    await login(page, base_url, username)
    await page.goto(f"{base_url}{path}")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "open", timeout=WAIT)
    return page


async def mark_unreloaded(page: Page) -> None:
    await page.evaluate("window.__sameDocument = true")


async def assert_not_reloaded(page: Page) -> None:
    assert await page.evaluate("window.__sameDocument === true"), "the page was reloaded"


async def test_meeting_in_browsers(live_sqlite: LiveServer, tmp_path: Path) -> None:
    srv = live_sqlite
    url = srv.url
    async with chromium() as browser:
        # ---- The chair schedules a meeting for Hà Nội and Phú Thọ, provinces and communes.
        chair = await new_page(browser)
        await login(chair, url, "chutri")
        await chair.goto(f"{url}/meetings")
        form = chair.locator("#schedule-form")
        await expect(form).to_be_visible()  # no meeting yet: the scheduling card is open
        await form.get_by_label("Tên hội nghị").fill(TITLE)
        await form.get_by_label("Chương trình").fill("Khai mạc\nĐiểm danh các điểm cầu\nThảo luận")
        await form.get_by_label("Thời gian bắt đầu").fill("2030-01-02T08:30")
        units = form.get_by_label("Đơn vị (tìm theo tên)")  # unit pickers (#14): by name, province shown
        await expect(units).to_have_count(3)
        await expect(units.nth(0)).to_have_value("Bộ Công an")  # the chair's own unit to start with
        for i, (query, code) in enumerate((("Hà Nội", "01"), ("phu tho", "25"), ("", ""))):
            await units.nth(i).fill(query)
            if code:
                await form.locator(".selector").nth(i).locator(f'[role=option][data-code="{code}"]').click()
            for level in ("province", "district", "commune"):
                box = form.locator(f"input[name=levels_{i}][value={level}]")
                await box.set_checked(bool(code) and level in ("province", "commune"))
        async with chair.expect_navigation():
            await form.get_by_role("button", name="Lên lịch").click()
        await expect(chair).to_have_url(re.compile(rf"^{re.escape(url)}/meetings/\d+/chair$"))
        match = re.search(r"/meetings/(\d+)/chair$", chair.url)
        assert match
        mid = int(match.group(1))
        await expect(chair.get_by_role("heading", level=1)).to_have_text(TITLE)
        await expect(chair.locator(".meeting-head")).to_contain_text("08:30 02/01/2030")
        await expect(chair.locator(".meeting-head details li")).to_have_text(
            ["Khai mạc", "Điểm danh các điểm cầu", "Thảo luận"])
        state = chair.locator("#state")
        await expect(state).to_have_attribute("data-state", "scheduled")
        await expect(chair.locator("#conn")).to_have_attribute("data-state", "open", timeout=WAIT)
        await mark_unreloaded(chair)

        # Roll-call grid: one row per province, nobody present yet (province + 2 communes each).
        provinces = chair.locator("#provinces tbody tr")
        await expect(provinces).to_have_count(2, timeout=WAIT)
        row_01 = chair.locator('#provinces tr[data-province="01"]')
        row_25 = chair.locator('#provinces tr[data-province="25"]')
        await expect(row_01.locator("td.present")).to_have_text("0/3")
        await expect(row_25.locator("td.present")).to_have_text("0/3")
        await expect(chair.locator('#provinces tr[data-province="79"]')).to_have_count(0)

        # ---- Rehearsal, then live: the badge follows without a reload.
        start_live = chair.get_by_role("button", name="Bắt đầu hội nghị")
        await expect(start_live).to_be_disabled(timeout=WAIT)  # scheduled: only rehearsal/cancel allowed
        await chair.get_by_role("button", name="Chạy thử kết nối").click()
        await expect(state).to_have_attribute("data-state", "rehearsal", timeout=WAIT)
        await expect(state).to_have_text("Chạy thử kết nối")
        await start_live.click()
        await expect(state).to_have_attribute("data-state", "live", timeout=WAIT)
        await expect(state).to_have_text("Đang diễn ra")
        await expect(chair.get_by_role("button", name="Kết thúc")).to_be_enabled()

        # ---- Two sites open their page: present on the chair console at once.
        t0 = srv.clock.now
        hoankiem = await open_as(browser, url, "hoankiem", f"/meetings/{mid}/site")
        vinhyen = await open_as(browser, url, "vinhyen", f"/meetings/{mid}/site")
        for site in (hoankiem, vinhyen):
            await expect(site.locator("#state")).to_have_attribute("data-state", "live")
            await expect(site.locator("#my-status")).to_have_attribute("data-status", "present_online",
                                                                       timeout=WAIT)
            await expect(site.locator("#my-status")).to_have_text("Có mặt trực tuyến")
            await expect(site.locator("body")).to_have_attribute("data-has-floor", "0")
        await expect(row_01.locator("td.present")).to_have_text("1/3", timeout=WAIT)
        await expect(row_25.locator("td.present")).to_have_text("1/3", timeout=WAIT)
        await expect(chair.locator("#totals")).to_have_text("2/6 có mặt · 2 trực tuyến · 0 vắng")

        # Drill-down into Phú Thọ.
        await row_25.click()
        await expect(chair.locator("#drill")).to_be_visible()
        await expect(chair.locator("#drill-title")).to_have_text("Điểm danh: Phú Thọ")
        drill_08707 = chair.locator('#seats tr[data-unit="08707"]')
        await expect(drill_08707).to_have_attribute("data-status", "present_online")
        await expect(drill_08707).to_have_attribute("data-online", "1")
        await expect(chair.locator('#seats tr[data-unit="08740"]')).to_have_attribute("data-status", "not_called")
        await expect(chair.locator('#seats tr[data-unit="00070"]')).to_have_count(0)

        # ---- The Phú Thọ province console sees its commune present (and joins as the province bridge).
        phutho = await open_as(browser, url, "phutho", f"/meetings/{mid}/province/25")
        prov_08707 = phutho.locator('#seats tr[data-unit="08707"]')
        await expect(prov_08707).to_have_attribute("data-status", "present_online", timeout=WAIT)
        await expect(prov_08707).to_have_attribute("data-online", "1")
        await expect(phutho.locator('#seats tr[data-unit="00070"]')).to_have_count(0)  # other province
        await expect(row_25.locator("td.present")).to_have_text("2/3", timeout=WAIT)  # the bridge itself
        await mark_unreloaded(phutho)

        # The province operator marks 08740 absent: an empty reason is refused and nothing changes.
        prov_08740 = phutho.locator('#seats tr[data-unit="08740"]')
        absent_dialog = phutho.locator("#absent-dialog")
        await prov_08740.get_by_role("button", name="Vắng…").click()
        await expect(absent_dialog).to_be_visible()
        await expect(phutho.locator("#absent-unit")).to_have_text("Phường Phúc Yên")
        await absent_dialog.get_by_role("button", name="Ghi nhận vắng").click()
        await expect(phutho.locator("#absent-error")).to_be_visible(timeout=WAIT)
        await expect(phutho.locator("#absent-error")).to_have_text("Cần ghi lý do vắng mặt.")
        await expect(absent_dialog).to_be_visible()  # kept open for the reason
        await expect(prov_08740).to_have_attribute("data-status", "not_called")
        await expect(chair.locator('#seats tr[data-unit="08740"]')).to_have_attribute("data-status", "not_called")
        # Escape gives up (it must not resend the refused mark and reopen the dialog).
        await phutho.keyboard.press("Escape")
        await expect(absent_dialog).to_be_hidden()
        # Again, with a reason.
        await prov_08740.get_by_role("button", name="Vắng…").click()
        await expect(absent_dialog).to_be_visible()
        await expect(phutho.locator("#absent-error")).to_be_hidden()
        await phutho.locator("#absent-reason").fill("Mất điện")
        await absent_dialog.get_by_role("button", name="Ghi nhận vắng").click()
        await expect(prov_08740).to_have_attribute("data-status", "absent", timeout=WAIT)
        await expect(prov_08740.locator("td").nth(2)).to_have_text("Vắng — Mất điện")
        await expect(absent_dialog).to_be_hidden()
        chair_08740 = chair.locator('#seats tr[data-unit="08740"]')
        await expect(chair_08740).to_have_attribute("data-status", "absent", timeout=WAIT)
        await expect(chair_08740.locator("td").nth(2)).to_have_text("Vắng — Mất điện")
        await expect(row_25.locator("td").nth(4)).to_have_text("1")  # absent column
        await expect(phutho.locator("#totals")).to_have_text("2/3 có mặt · 2 trực tuyến · 1 vắng")
        await shot(phutho, tmp_path, "meeting-province-console")

        # ---- Vĩnh Yên raises its hand; the chair grants the floor; the site sees it holds it.
        hand_btn = vinhyen.locator("#hand-btn")
        await expect(hand_btn).to_be_enabled()
        await hand_btn.click()
        await expect(hand_btn).to_have_attribute("data-hand", "up", timeout=WAIT)
        await expect(hand_btn).to_have_text("Hạ tay")
        hand = chair.locator('#hands li[data-unit="08707"]')
        await expect(hand).to_be_visible(timeout=WAIT)
        await expect(hand).to_contain_text("Phường Vĩnh Yên (08707)")
        await expect(chair.locator("#hand-count")).to_have_text("(1)")
        await expect(phutho.locator('#hands li[data-unit="08707"]')).to_be_visible(timeout=WAIT)
        await hand.get_by_role("button", name="Trao quyền").click()
        await expect(vinhyen.locator("#my-floor")).to_be_visible(timeout=WAIT)
        await expect(vinhyen.locator("body")).to_have_attribute("data-has-floor", "1")
        await expect(vinhyen.locator("#floor-holder")).to_have_attribute("data-unit", "08707")
        await expect(vinhyen.locator("#floor-holder")).to_have_text("Phường Vĩnh Yên (08707)")
        await expect(hand_btn).to_be_disabled()  # the holder cannot queue again
        await expect(chair.locator("#hands li")).to_have_count(0, timeout=WAIT)
        await expect(chair.locator("#floor-holder")).to_have_attribute("data-unit", "08707")
        await expect(hoankiem.locator("#floor-holder")).to_have_attribute("data-unit", "08707", timeout=WAIT)
        await expect(hoankiem.locator("#my-floor")).to_be_hidden()
        await expect(hoankiem.locator("body")).to_have_attribute("data-has-floor", "0")
        await shot(vinhyen, tmp_path, "meeting-site-holding-floor")
        await shot(chair, tmp_path, "meeting-chair-console")

        # ---- Vĩnh Yên closes its page and opens it again: offline, then online, one record.
        srv.clock.advance(minutes=5)
        t1 = srv.clock.now
        context = vinhyen.context
        await vinhyen.close()
        await expect(drill_08707).to_have_attribute("data-online", "0", timeout=WAIT)
        await expect(drill_08707).to_have_attribute("data-status", "present_online")
        await expect(drill_08707.locator("td").nth(3)).to_have_text("○ mất kết nối")
        await expect(prov_08707).to_have_attribute("data-online", "0", timeout=WAIT)
        srv.clock.advance(minutes=2)
        t2 = srv.clock.now
        vinhyen = await context.new_page()
        await vinhyen.goto(f"{url}/meetings/{mid}/site")
        await expect(vinhyen.locator("#my-status")).to_have_attribute("data-status", "present_online",
                                                                      timeout=WAIT)
        await expect(drill_08707).to_have_attribute("data-online", "1", timeout=WAIT)
        await expect(prov_08707).to_have_attribute("data-online", "1", timeout=WAIT)
        await expect(row_25.locator("td.present")).to_have_text("2/3")

        # ---- The chair concludes (after confirming).
        srv.clock.advance(minutes=10)
        t3 = srv.clock.now
        confirms: list[str] = []

        async def accept(dialog: Dialog) -> None:
            confirms.append(dialog.message)
            await dialog.accept()

        chair.on("dialog", accept)
        await chair.get_by_role("button", name="Kết thúc").click()
        await expect(state).to_have_attribute("data-state", "concluded", timeout=WAIT)
        assert confirms == ["Kết thúc hội nghị?"]
        await expect(state).to_have_text("Đã kết thúc")
        for page in (vinhyen, hoankiem, phutho):
            await expect(page.locator("#state")).to_have_attribute("data-state", "concluded", timeout=WAIT)
        await expect(vinhyen.locator("body")).to_have_attribute("data-has-floor", "0")
        await expect(vinhyen.locator("#hand-btn")).to_be_disabled()
        await expect(chair.get_by_role("button", name="Kết thúc")).to_be_disabled()
        await assert_not_reloaded(chair)
        await assert_not_reloaded(phutho)

        # ---- The attendance export, downloaded with the chair's session.
        resp = await chair.request.get(f"{url}/meetings/{mid}/attendance.csv")
        assert resp.status == 200
        assert resp.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO((await resp.body()).decode("utf-8-sig"))))
        header, by_code = rows[0], {r[0]: r for r in rows[1:]}
        assert header[0] == "Mã đơn vị" and header[8] == "Số lần kết nối" and header[11] == "Các khoảng kết nối"
        assert set(by_code) == {"01", "00070", "00004", "25", "08707", "08740"}
        vy, hk = by_code["08707"], by_code["00070"]
        assert vy[1:5] == ["Phường Vĩnh Yên", "Xã/Phường", "Phú Thọ", "Có mặt trực tuyến"], vy
        assert hk[1:5] == ["Phường Hoàn Kiếm", "Xã/Phường", "Thành phố Hà Nội", "Có mặt trực tuyến"], hk
        assert vy[8] == "2" and vy[11] == f"{hms(t0)}–{hms(t1)}; {hms(t2)}–{hms(t3)}", vy
        assert vy[9] == str(15 * 60), vy  # 5 + 10 minutes connected
        assert int(vy[10]) > 0, vy  # held the floor until the end
        assert hk[8] == "1" and hk[11] == f"{hms(t0)}–{hms(t3)}", hk
        assert hk[9] == str(17 * 60), hk
        assert by_code["08740"][4:6] == ["Vắng", "Mất điện"], by_code["08740"]
        assert by_code["00004"][4] == "Chưa điểm danh" and by_code["00004"][8] == "0"
