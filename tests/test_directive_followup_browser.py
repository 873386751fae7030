"""In real headless Chromium (issue #15): from the chair's dashboard (with its charts), a province
row opens the directive trees cut to that province; a directive links back to its meeting and
minutes; an assignment's history reads as sentences; the chair's "Theo dõi" list shows what its
unit gave."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser_util import chromium, login, new_page, shot
from tests.followup_util import PLAN_FILE, VP_SUBTREE, followup_scenario

pytestmark = pytest.mark.browser


async def test_followup_navigation_charts_and_history(server_factory: Callable[..., Any], sqlite_url: str,
                                                      tmp_path: Path) -> None:
    f = await followup_scenario(server_factory, sqlite_url, conclude=True)
    url = f.live.url
    async with chromium() as browser:
        page = await new_page(browser)
        await login(page, url, "chutri")

        # The dashboard: numbers in Vietnamese format, both charts drawn.
        await page.goto(f"{url}/directives/dashboard")
        await expect(page.locator("#board-status")).to_have_text("đã kết nối")
        await expect(page.locator('#directive-board tfoot td[data-field="rate"]')).to_have_text("66,67 %")
        await expect(page.locator("#chart-buckets canvas")).to_have_count(1)
        await expect(page.locator("#chart-trend canvas")).to_have_count(1)
        assert await page.locator("#chart-buckets").get_attribute("data-rows") == "4"
        await shot(page, tmp_path, "followup-dashboard")

        # A province row opens the trees cut to that province: only its units show.
        async with page.expect_navigation():
            await page.get_by_role("link", name="Tỉnh Vĩnh Phúc").click()
        assert page.url.endswith("/directives/tree?unit=26")
        shown = set(await page.locator("li[data-unit]").evaluate_all("els => els.map(e => e.dataset.unit)"))
        assert shown and shown <= VP_SUBTREE and {"26", "243", "244"} <= shown, shown
        for other in ("Thành phố Hà Nội", "Phú Thọ", "Thành phố Hồ Chí Minh"):
            assert await page.get_by_text(other).count() == 0
        await shot(page, tmp_path, "followup-tree-26")

        # The directive links back to its meeting and the minutes.
        async with page.expect_navigation():
            await page.locator(f'article[data-directive="{f.directive_a}"] > p.directive-text a').click()
        assert page.url.endswith(f"/directives/{f.directive_a}")
        meeting = page.locator("#origin-meeting")
        assert await meeting.get_attribute("href") == f"/meetings/{f.meeting_id}"
        await expect(meeting).to_contain_text("Đề án 06")
        minutes = page.locator("#origin-minutes")
        assert await minutes.get_attribute("href") == f"/meetings/{f.meeting_id}/minutes"
        async with page.expect_navigation() as nav:
            await minutes.click()
        assert (await nav.value).status == 200 and page.url.endswith(f"/meetings/{f.meeting_id}/minutes")

        # The chair's unit sees what it gave and follows.
        await page.goto(f"{url}/directives")
        await page.get_by_role("link", name="Theo dõi (2)").click()
        followed = page.locator("#followed")
        await expect(followed.locator(f'tr[data-directive="{f.directive_a}"]')).to_have_count(1)
        await expect(followed.locator(f'tr[data-directive="{f.directive_b}"]')).to_have_count(1)
        await shot(page, tmp_path, "followup-followed")

        # Vĩnh Phúc's assignment: its history in sentences, no codes, no JSON.
        vp = await new_page(browser)
        await login(vp, url, "vinhphuc")
        await vp.goto(f"{url}/assignments/{f.vp_a}")
        history = vp.locator("#assignment-history")
        await expect(history).to_contain_text("vinhphuc đã cập nhật tiến độ từ 20 % lên 60 %.")
        await expect(history).to_contain_text(f"Tệp đính kèm: {PLAN_FILE}.")
        await expect(history).to_contain_text("đã báo hoàn thành nhiệm vụ đúng hạn (tiến độ từ 60 % lên 100 %)")
        await expect(history).to_contain_text("Bộ Công an đã giao nhiệm vụ cho Tỉnh Vĩnh Phúc")
        text = await vp.locator("main").inner_text()
        assert "assignment_progress" not in text and "assignment_done" not in text
        assert "{" not in text and "}" not in text
        await shot(vp, tmp_path, "followup-history")
