"""In real headless Chromium: the chair watches the directive dashboard while Vĩnh Phúc's operator
reports progress with an attachment and marks its assignment done on the assignment page; the
chair's counts move without a reload."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser_util import chromium, login, new_page, shot
from tests.directive_util import CONCLUSION, INSTRUCTIONS, every_province, live_meeting, ok, start_seed_server

pytestmark = pytest.mark.browser


async def test_dashboard_moves_while_a_province_reports(server_factory: Callable[..., Any], sqlite_url: str,
                                                        tmp_path: Path) -> None:
    live = await start_seed_server(server_factory, sqlite_url)
    chair = await live.login("chutri")
    meeting_id = await live_meeting(chair)
    await ok(await chair.api("POST", f"/api/meetings/{meeting_id}/conclusions", json={
        "text": CONCLUSION, "directives": [every_province(INSTRUCTIONS[1])]}), 201)
    own = (await ok(await (await live.login("vinhphuc")).get("/api/directives")))["assignments"][0]

    async with chromium() as browser:
        board = await new_page(browser)
        await login(board, live.url, "chutri")
        await board.goto(f"{live.url}/directives/dashboard")
        cell = board.locator('tr[data-unit="26"] td[data-bucket="done_on_time"]')
        within = board.locator('tr[data-unit="26"] td[data-bucket="open_within"]')
        await expect(board.locator("#board-status")).to_have_text("đã kết nối")
        assert (await cell.text_content(), await within.text_content()) == ("0", "1")

        vp = await new_page(browser)
        await login(vp, live.url, "vinhphuc")
        await vp.goto(f"{live.url}/assignments/{own['id']}")
        plan = tmp_path / "ke-hoach-tap-huan.pdf"
        plan.write_bytes(b"%PDF-1.4 ke hoach")
        await vp.get_by_label("Nội dung báo cáo").fill("Đã tập huấn cho cán bộ trực tiếp xử lý hồ sơ")
        await vp.get_by_label("Tiến độ (%)").fill("100")
        await vp.get_by_label("Tệp đính kèm").set_input_files(str(plan))
        async with vp.expect_navigation():
            await vp.get_by_role("button", name="Gửi báo cáo").click()
        assert await vp.locator("#assignment-percent").text_content() == "100 %"
        assert await vp.get_by_role("link", name="ke-hoach-tap-huan.pdf").count() == 1
        async with vp.expect_navigation():
            await vp.get_by_role("button", name="Báo hoàn thành").click()
        assert await vp.locator("#assignment-bucket").text_content() == "Hoàn thành đúng hạn"

        # The chair's page was never reloaded: the counts arrived over the websocket.
        await expect(cell).to_have_text("1")
        assert await within.text_content() == "0"
        await shot(board, tmp_path, "directives-dashboard")
