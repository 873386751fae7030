"""The directive pages and the KPI pages in English when the user picks English, and in Vietnamese,
as before, otherwise: labels come from web/i18n/{vi,en}.{directives,kpi}.json; the data (unit
names, directive texts) stays as entered."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser_util import chromium, login, new_page
from tests.conftest import Client, LiveServer
from tests.directive_util import CONCLUSION, INSTRUCTIONS, every_province, live_meeting, ok, start_seed_server

# page → (Vietnamese labels, their English counterparts)
LABELS: dict[str, tuple[list[str], list[str]]] = {
    "list": (["Nhiệm vụ được giao · Tỉnh Vĩnh Phúc", "Bảng theo dõi toàn đơn vị", "Nội dung chỉ đạo",
              "Đơn vị giao", "Quá hạn chưa hoàn thành", "Đang thực hiện trong hạn", "Hoàn thành quá hạn",
              "Hoàn thành đúng hạn", "Không có.", "Nhắc việc:", "quá 1 ngày"],
             ["Assigned tasks · Tỉnh Vĩnh Phúc", "Tracking board for the whole unit", "Assigned by",
              "Overdue, not done", "In progress, within deadline", "Done late", "Done on time", "None.",
              "Reminder:", "days overdue: 1", "Decision 42/2014"]),
    "directive": (["Chỉ đạo và phân công thực hiện", "Đơn vị giao: Bộ Công an", "Độ khẩn: Thường",
                   "Tổng hợp:", "tiến độ bình quân", "(Thực hiện)", "(Chủ trì)", "cấp dưới: 0/1 xong"],
                  ["Directive and its assignments", "Assigned by: Bộ Công an", "Priority: Normal", "Summary:",
                   "average progress", "(Assignee)", "(Lead)", "subordinate units: 0/1 done"]),
    "assignment": (["Nhiệm vụ của Tỉnh Vĩnh Phúc", "Báo cáo tiến độ", "Nội dung báo cáo", "Tiến độ (%)",
                    "Tệp đính kèm", "Gửi báo cáo", "Báo hoàn thành", "Giao tiếp cho đơn vị cấp dưới",
                    "Hoặc mọi đơn vị cấp <select", "Đơn vị chủ trì thực hiện", "Thượng khẩn", "Hỏa tốc",
                    "Lịch sử thay đổi", "đã cập nhật tiến độ từ 0 % lên 40 %", "Cây phân công",
                    "Cấp dưới: 0/1 đã hoàn thành"],
                   ["Task of Tỉnh Vĩnh Phúc", "Progress reports", "Progress (%)", "Attachments", "Send report",
                    "Report done", "Assign to subordinate units", "Or every <select", "Lead unit (code, optional)",
                    "Very urgent", "Flash", "Change history", "updated progress from 0 % to 40 %", "Assignment tree",
                    "Subordinate units: 0/1 done"]),
    "board": (["Theo dõi thực hiện nhiệm vụ · Bộ Công an", "Số nhiệm vụ theo tình trạng", "Quá hạn chưa hoàn thành",
               "Hoàn thành đúng hạn", ">Tổng<", ">Cộng<"],
              ["Task tracking · Bộ Công an", "Tasks by status, per province", "Overdue, not done", "Done on time",
               ">Total<"]),
    "slides": (["Số liệu chỉ tiêu · Bộ Công an", "Kỳ: từ đầu đợt tới nay"],
               ["Indicator figures · Bộ Công an", "Period: campaign to date"]),
    "upload": (["Gửi số liệu chỉ tiêu từ CSV", "Tệp CSV mã hoá UTF-8", "Chỉ tiêu đếm để trống mẫu số",
                "<code>2022-Q2</code> hoặc <code>campaign</code>", "Tệp CSV (≤", "Gửi số liệu<"],
               ["Upload indicator figures from CSV", "A UTF-8 CSV file", "Count indicators leave the denominator",
                "<code>2022-Q2</code> or <code>campaign</code>", "CSV file (≤", "Send figures<"]),
}
# What the slide's script shows, from the catalog embedded in the page.
SLIDE_JS = {"js.kpi.col.indicator": ("Chỉ tiêu", "Indicator"), "js.kpi.colour.green": ("Đạt", "Met"),
            "js.kpi.col.change": ("So với hội nghị trước", "Change since the previous meeting"),
            "js.kpi.connected": ("đã kết nối", "connected")}


async def pages(live: LiveServer, assignment: int, directive: int, lang: str) -> dict[str, str]:
    vp, chair = await live.login("vinhphuc"), await live.login("chutri")
    if lang == "en":
        for c in (vp, chair):
            assert (await c.get("/lang/en")).status == 303
    paths: list[tuple[str, Client, str]] = [
        ("list", vp, "/directives"), ("directive", vp, f"/directives/{directive}"),
        ("assignment", vp, f"/assignments/{assignment}"), ("board", chair, "/directives/dashboard"),
        ("slides", chair, "/slides/BCA"), ("upload", vp, "/kpi/upload")]
    out = {}
    for name, client, path in paths:
        resp = await client.get(path)
        assert resp.status == 200, (path, resp.status)
        out[name] = html.unescape(await resp.text())
    return out


def embedded_js(page: str) -> dict[str, str]:
    m = re.search(r'<script type="application/json" id="i18n-js">(.*?)</script>', page, re.S)
    assert m
    return dict(json.loads(m.group(1)))


async def test_directive_and_kpi_pages_in_both_languages(server_factory: Callable[..., Any], sqlite_url: str) -> None:
    live = await start_seed_server(server_factory, sqlite_url)
    chair = await live.login("chutri")
    meeting_id = await live_meeting(chair)
    created = await ok(await chair.api("POST", f"/api/meetings/{meeting_id}/conclusions", json={
        "text": CONCLUSION, "directives": [every_province(INSTRUCTIONS[1], deadline="2022-08-31")]}), 201)
    assert created
    vp = await live.login("vinhphuc")
    own = (await ok(await vp.get("/api/directives")))["assignments"][0]
    await ok(await vp.api("POST", f"/api/assignments/{own['id']}/reports",
                          json={"text": "Đã xây dựng kế hoạch", "percent": 40}), 201)
    await ok(await vp.api("POST", f"/api/assignments/{own['id']}/breakdown", json={
        "text": "Kế hoạch của Thành phố Vĩnh Yên", "deadline": "2022-08-30", "lead": "243", "units": ["243"]}), 201)
    live.clock.advance(days=15)  # one day past the deadline: the overdue bucket and its reminder

    directive = int(own["directive"]["id"])
    vi, en = [await pages(live, own["id"], directive, lang) for lang in ("vi", "en")]
    for name, (vi_labels, en_labels) in LABELS.items():
        for label in vi_labels:
            assert label in vi[name], (name, label)
            assert label not in en[name], (name, label)
        for label in en_labels:
            assert label in en[name], (name, label)
            assert label not in vi[name], (name, label)
    # Data stays as entered; dates keep dd/mm/yyyy.
    assert "Kế hoạch của Thành phố Vĩnh Yên" in en["directive"] and "31/08/2022" in en["list"]
    assert "Đã xây dựng kế hoạch" in en["assignment"] and "31/08/2022" in en["assignment"]
    for page, lang in ((vi["slides"], 0), (en["slides"], 1)):
        js = embedded_js(page)
        assert {k: js[k] for k in SLIDE_JS} == {k: v[lang] for k, v in SLIDE_JS.items()}
    assert embedded_js(en["board"])["js.directives.connecting"] == "connecting…"
    assert embedded_js(vi["board"])["js.directives.connecting"] == "đang kết nối…"


@pytest.mark.browser
async def test_scripts_speak_english_in_the_browser(live_sqlite: LiveServer, tmp_path: Path) -> None:
    """The slide and the dashboard are drawn by their scripts: headings, ratings and the connection
    status come from the embedded English catalog; figures use English number formatting."""
    srv = live_sqlite
    async with chromium() as browser:
        page = await new_page(browser)
        await login(page, srv.url, "chutri")
        await page.goto(f"{srv.url}/lang/en?next=/slides/BCA")
        await expect(page.locator("#slide-status")).to_have_text("connected", timeout=5000)
        await expect(page.locator("#slide table.kpi-slide thead")).to_contain_text("Indicator")
        await expect(page.locator("#slide table.kpi-slide thead")).to_contain_text("Change since the previous meeting")
        await expect(page.locator("#slide-previous")).to_contain_text("has not attended a concluded meeting")
        await expect(page.locator("#slide .kpi-ranking")).to_contain_text("Rate")
        site = await srv.login("vinhyen")
        resp = await site.api("POST", "/api/kpi/reports", json={"reports": [
            {"report_id": "en-1", "unit": "08707", "indicator": "DVC_TY_LE_DUNG_HAN", "period": "campaign",
             "value": 74336, "denominator": 74587}]})
        assert resp.status == 200, await resp.text()
        row = page.locator('#slide tr[data-code="DVC_TY_LE_DUNG_HAN"]')
        await expect(row.locator('td[data-field="value"]')).to_have_text("99.66 % (74,336/74,587)", timeout=2000)
        await expect(row.locator(".badge")).to_have_text("Met")
        assert "Chỉ tiêu" not in await page.locator("#slide thead").first.inner_text()

        await page.goto(f"{srv.url}/directives/dashboard")
        await expect(page.locator("#board-status")).to_have_text("connected", timeout=5000)
        await expect(page.locator("#directive-board thead")).to_contain_text("Overdue, not done")
