"""The meeting pages (chair console, province console, site page) in both languages: the real
server, a live meeting, and people who picked English (GET /lang/en) or kept Vietnamese.
Vietnamese stays exactly as it was; English replaces every label, data (unit names, titles)
stays as entered."""

from __future__ import annotations

import string

import pytest
from playwright.async_api import expect

from server.i18n import catalog
from tests.browser_util import chromium, login, new_page
from tests.conftest import Client, LiveServer
from tests.live_util import schedule, set_state

TITLE = "Hội nghị thử song ngữ"

# (page, Vietnamese labels, their English) — what an operator reads on each page
PAGES = {
    "chair": (["Điều hành hội nghị", "Bắt đầu hội nghị", "Mời điểm cầu tiếp theo", "Thu hồi quyền phát biểu",
               "Giơ tay xin phát biểu", "Kết luận và chỉ đạo", "Nội dung kết luận", "Hỏa tốc",
               "Quyền phát biểu:", "Chủ trì: Bộ Công an", "Đang diễn ra", "Chưa kết nối hình/tiếng",
               "Lý do vắng mặt của", "Xuất điểm danh CSV"],
              ["Conference control", "Start conference", "Call next site", "Take back the floor",
               "Raised hands", "Conclusions and directives", "Record conclusion", "Flash",
               "Floor:", "Chair: Bộ Công an", "Live", "Picture/sound not connected",
               "Reason for the absence of", "Export roll call CSV"]),
    "province": (["Điểm cầu Thành phố Hà Nội", "Giơ tay trong tỉnh", "Có mặt trực tiếp", "Thao tác",
                  "Quyền phát biểu:", "Đang kết nối…", "Chương trình"],
                 ["Thành phố Hà Nội site", "Raised hands in the province", "Present in person", "Actions",
                  "Floor:", "Connecting…", "Agenda"]),
    "site": (["Điểm cầu Phường Vĩnh Yên", "Giơ tay xin phát biểu", "Bật lại micrô của điểm cầu",
              "Tắt micrô của điểm cầu", "Micrô:", "Số liệu chỉ tiêu", "Hình ảnh hội nghị",
              "Trình duyệt đang chặn âm thanh.", "Vào hội nghị", "Xem biên bản hội nghị"],
             ["Phường Vĩnh Yên site", "Raise hand to speak", "Turn the site microphone back on",
              "Turn the site microphone off", "Microphone:", "Indicator figures", "Conference video",
              "The browser is blocking sound.", "Join the conference", "Read the minutes"]),
}
WHO = {"chair": ("chutri", "chair"), "province": ("hanoi", "province/01"), "site": ("vinhyen", "site")}


async def live_meeting(live: LiveServer) -> int:
    chair = await live.login("chutri")
    mid = await schedule(chair, title=TITLE)
    await set_state(chair, mid, "rehearsal", "live")
    return mid


async def page_text(client: Client, path: str) -> str:
    resp = await client.get(path)
    assert resp.status == 200, (path, resp.status)
    return await resp.text()


def visible_part(html: str) -> str:
    """The page without the embedded js.* catalog (it carries every page script's message)."""
    start = html.find('<script type="application/json" id="i18n-js">')
    end = html.find("</script>", start)
    return html[:start] + html[end:] if start >= 0 else html


@pytest.mark.parametrize("page", sorted(PAGES))
async def test_meeting_pages_in_english_and_vietnamese(live_sqlite: LiveServer, page: str) -> None:
    mid = await live_meeting(live_sqlite)
    user, suffix = WHO[page]
    path = f"/meetings/{mid}/{suffix}"
    vi_labels, en_labels = PAGES[page]

    vi_client = await live_sqlite.login(user)
    vi_html = visible_part(await page_text(vi_client, path))
    assert '<html lang="vi">' in vi_html
    for label in vi_labels:
        assert label in vi_html, (page, "vi", label)
    assert TITLE in vi_html

    en_client = await live_sqlite.login(user)
    resp = await en_client.get(f"/lang/en?next={path}")
    assert resp.status == 303
    en_html = visible_part(await page_text(en_client, path))
    assert '<html lang="en">' in en_html
    for label in en_labels:
        assert label in en_html, (page, "en", label)
    for label in vi_labels:
        assert label not in en_html, (page, "Vietnamese left in English", label)
    assert TITLE in en_html  # data is not translated


def test_meeting_catalog_keeps_vietnamese_and_translates_english() -> None:
    vi, en = catalog("vi"), catalog("en")
    mine = [k for k in vi if k.startswith(("meeting.", "js.meeting.", "js.media."))]
    assert len(mine) > 100
    assert vi["meeting.conclusions.help"].startswith("Ghi trong khi hội nghị đang diễn ra.")
    assert vi["js.meeting.status.present_online"] == "Có mặt trực tuyến"
    assert vi["js.media.status.idle"] == "Chưa kết nối hình/tiếng"
    # placeholders match, so a sentence never loses a number or a name in either language
    def fields(text: str) -> list[str]:
        return sorted(f for _, f, _, _ in string.Formatter().parse(text) if f)

    assert all(fields(vi[k]) == fields(en[k]) for k in mine), [k for k in mine if fields(vi[k]) != fields(en[k])]
    untranslated = [k for k in mine if vi[k] == en[k] and any(c > "\u00ff" for c in vi[k] if c not in "—…·●○“”")]
    assert not untranslated, untranslated


@pytest.mark.browser
async def test_site_page_in_english_shows_live_status_in_english(live_sqlite: LiveServer) -> None:
    mid = await live_meeting(live_sqlite)
    url = live_sqlite.url
    async with chromium() as browser:
        page = await new_page(browser)
        await login(page, url, "vinhyen")
        await page.goto(f"{url}/lang/en?next=/meetings/{mid}/site")
        await expect(page.locator("#conn")).to_have_attribute("data-state", "open", timeout=5_000)
        await expect(page.locator("#conn")).to_have_text("Connected")
        await expect(page.locator("#state")).to_have_text("Live")
        await expect(page.locator("#my-status")).to_have_attribute("data-status", "present_online", timeout=5_000)
        await expect(page.locator("#my-status")).to_have_text("Present online")
        await expect(page.locator("#my-mute")).to_have_text("On")
        await expect(page.locator("#hand-btn")).to_have_text("Raise hand to speak")
        await expect(page.locator("#floor-holder")).to_have_text("Chair")
        status = page.locator("#media-status")
        await expect(status).not_to_have_attribute("data-media", "idle", timeout=5_000)
        key = await status.get_attribute("data-media")
        await expect(status).to_have_text(catalog("en")[f"js.media.status.{key}"])
