"""#6 in real headless Chromium, end to end: during a live meeting the chair records a conclusion
with a directive to two provinces in the chair console; Phú Thọ's operator finds it and breaks it
down to a ward; the ward reports it done; the chair's dashboard counts move without a reload; the
chair concludes; the minutes page, its PDF and its DOCX all carry the directive (text extracted
from the files)."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from docx import Document
from playwright.async_api import Page, expect
from pypdf import PdfReader

from server.timefmt import VN
from tests.browser_util import chromium, login, new_page, shot
from tests.conftest import LiveServer
from tests.live_util import schedule, set_state

pytestmark = pytest.mark.browser

DIRECTIVE = "Rà soát, số hóa hồ sơ thủ tục hành chính còn tồn đọng tại bộ phận một cửa"
BREAKDOWN = "Phường bố trí cán bộ số hóa hồ sơ tồn đọng, báo cáo kết quả về Công an tỉnh"


async def fetch_bytes(page: Page, url: str) -> bytes:
    resp = await page.request.get(url)
    assert resp.status == 200, (url, resp.status)
    return await resp.body()


async def test_conclusion_to_minutes_in_the_browser(live_sqlite: LiveServer, tmp_path: Path) -> None:
    srv = live_sqlite
    chair_api = await srv.login("chutri")
    mid = await schedule(chair_api, title="Hội nghị giao ban số hóa hồ sơ")
    await set_state(chair_api, mid, "rehearsal", "live")
    today = srv.clock().astimezone(VN).date()
    due, ward_due = today + timedelta(days=30), today + timedelta(days=14)

    async with chromium() as browser:
        chair = await new_page(browser)
        await login(chair, srv.url, "chutri")
        await chair.goto(f"{srv.url}/meetings/{mid}/chair")
        # A bad deadline first: refused with a clear message, nothing typed is lost.
        await chair.get_by_label("Nội dung kết luận").fill("Các tỉnh đẩy nhanh số hóa hồ sơ.")
        await chair.get_by_label("Nội dung chỉ đạo").fill(DIRECTIVE)
        # Units are picked by name (#14), each option showing its province.
        for label, query, code in (("Giao cho các đơn vị (tìm theo tên)", "Hà Nội", "01"),
                                   ("Giao cho các đơn vị (tìm theo tên)", "Phú Thọ", "25"),
                                   ("Đơn vị phối hợp (tìm theo tên, không bắt buộc)", "Hồ Chí Minh", "79")):
            await chair.get_by_label(label).fill(query)
            await chair.locator(f'#conclusion-form [role=option][data-code="{code}"]:visible').click()
        await expect(chair.locator("#conclusion-form input[name=units]")).to_have_value("01,25")
        await chair.get_by_label("Thời hạn").fill((today - timedelta(days=1)).isoformat())
        await chair.get_by_role("button", name="Ghi kết luận").click()
        await expect(chair.locator("#conclusion-error")).to_contain_text("đã qua")
        await expect(chair.get_by_label("Nội dung chỉ đạo")).to_have_value(DIRECTIVE)
        await chair.get_by_label("Thời hạn").fill(due.isoformat())
        await chair.get_by_role("button", name="Ghi kết luận").click()
        await expect(chair.locator("#conclusions")).to_contain_text(DIRECTIVE)
        await expect(chair.locator("#conclusions")).to_contain_text("3 đơn vị")

        board = await new_page(browser)
        await login(board, srv.url, "chutri")
        await board.goto(f"{srv.url}/directives/dashboard")
        await expect(board.locator("#board-status")).to_have_text("đã kết nối")
        await board.evaluate("window.__kept = 1")
        done_25 = board.locator('tr[data-unit="25"] td[data-bucket="done_on_time"]')
        await expect(done_25).to_have_text("0")

        # Phú Thọ's operator finds the directive and breaks it down to Phường Vĩnh Yên.
        province = await new_page(browser)
        await login(province, srv.url, "phutho")
        await province.goto(f"{srv.url}/directives")
        await province.get_by_role("link", name=DIRECTIVE[:40]).first.click()
        await province.locator("details summary").filter(has_text="Giao tiếp cho đơn vị cấp dưới").click()
        form = province.locator("#breakdown-form")
        await form.get_by_label("Nội dung chỉ đạo").fill(BREAKDOWN)
        await form.get_by_label("Thời hạn").fill(ward_due.isoformat())
        await form.get_by_label("Đơn vị chủ trì thực hiện (mã, không bắt buộc)").fill("08707")
        await form.get_by_label("Đơn vị phối hợp (mã, cách nhau bởi dấu phẩy, không bắt buộc)").fill("08740")
        await form.get_by_label("Độ khẩn").select_option(label="Khẩn")
        async with province.expect_navigation():
            await form.get_by_role("button", name="Giao nhiệm vụ").click()
        await expect(province.locator("body")).to_contain_text("Cấp dưới: 0/2 đã hoàn thành")

        # The ward reports it done.
        ward = await new_page(browser)
        await login(ward, srv.url, "vinhyen")
        await ward.goto(f"{srv.url}/directives")
        await ward.get_by_role("link", name=BREAKDOWN[:40]).first.click()
        await expect(ward.locator("#assignment-priority")).to_have_text("Khẩn")
        await expect(ward.locator("body")).to_contain_text("Chủ trì")
        await ward.get_by_label("Nội dung báo cáo").fill("Đã số hóa 312 hồ sơ tồn đọng")
        await ward.get_by_label("Tiến độ (%)").fill("100")
        async with ward.expect_navigation():
            await ward.get_by_role("button", name="Gửi báo cáo").click()
        async with ward.expect_navigation():
            await ward.get_by_role("button", name="Báo hoàn thành").click()
        await expect(ward.locator("#assignment-bucket")).to_have_text("Hoàn thành đúng hạn")

        # The chair's dashboard moved by itself.
        await expect(done_25).to_have_text("1", timeout=3000)
        assert await board.evaluate("window.__kept") == 1
        await shot(board, tmp_path, "conclusions-dashboard")

        # The chair concludes; the minutes carry the directive in HTML, PDF and DOCX.
        chair.on("dialog", lambda d: d.accept())
        await chair.get_by_role("button", name="Kết thúc").click()
        await expect(chair.locator("#state")).to_have_attribute("data-state", "concluded")
        await chair.goto(f"{srv.url}/meetings/{mid}")
        assert chair.url.endswith(f"/meetings/{mid}/minutes")
        await expect(chair.locator("article.notice")).to_contain_text(DIRECTIVE)
        await expect(chair.locator("article.notice")).to_contain_text("THÔNG BÁO")
        pdf_href = await chair.get_by_role("link", name="Tải PDF").get_attribute("href")
        docx_href = await chair.get_by_role("link", name="Tải DOCX").get_attribute("href")
        assert pdf_href and docx_href
        pdf = PdfReader(io.BytesIO(await fetch_bytes(chair, srv.url + pdf_href)))
        flat = " ".join(" ".join((p.extract_text() or "") for p in pdf.pages).split())
        assert DIRECTIVE in flat, flat[:1500]
        word = Document(io.BytesIO(await fetch_bytes(chair, srv.url + docx_href)))
        words = "\n".join([p.text for p in word.paragraphs]
                          + [c.text for t in word.tables for r in t.rows for c in r.cells])
        assert DIRECTIVE in words and "Phú Thọ" in words
        await shot(chair, tmp_path, "minutes")
