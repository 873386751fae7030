"""A recording in Chromium (issue #17): the recordings page plays it (the video's current time
advances) and a click on a chapter — a floor holder — seeks to where that speaker began, loading
the segment that holds that moment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server.state import DB
from sessions.store import recordings as recording_store
from tests.browser_util import chromium, login, new_page, shot
from tests.conftest import LiveServer
from tests.live_util import schedule, set_state
from tests.recording_util import FPS, record_synthetic
from tests.test_media_server import bridge_socket
from tests.test_recording_bridge import poll


async def test_a_recording_plays_in_chromium_and_a_chapter_seeks(server_factory: Any, sqlite_url: str,
                                                                 tmp_path: Path) -> None:
    folder = tmp_path / "recordings"
    srv: LiveServer = await server_factory(sqlite_url, recordings_dir=str(folder), recording_min_free_mb=1)
    chair = await srv.login("chutri")
    mid = await schedule(chair)
    # 12 s of programme in segments of 4 s; Hoàn Kiếm takes the floor at 5 s, Vĩnh Yên at 9 s
    events = await record_synthetic(folder, mid, 12.0, {5 * FPS: "00070", 9 * FPS: "08707"})
    bridge = await bridge_socket(srv, "BCA")  # what the central bridge says over its control channel
    try:
        for event in events:
            answer = await bridge.request({"type": "recording", "meeting": mid, "report": event})
            assert answer["type"] == "result", answer
    finally:
        await bridge.close()
    async with srv.app[DB]() as db:
        recs = await recording_store.listing(db, mid)
    segments = recs[0]["segments"]
    assert len(segments) == 3 and [c["unit"] for c in recs[0]["chapters"]] == [None, "00070", "08707"]

    async with chromium() as browser:
        page = await new_page(browser)
        await login(page, srv.url, "chutri")
        await page.goto(f"{srv.url}/meetings/{mid}/minutes")  # before the conclusion: the presiding form
        await page.goto(f"{srv.url}/meetings/{mid}/recordings")
        video = page.locator("video.recording-player")
        await video.wait_for()
        await page.evaluate("document.querySelector('video.recording-player').muted = true")
        await page.evaluate("document.querySelector('video.recording-player').play()")
        await page.wait_for_function("() => document.querySelector('video.recording-player').currentTime > 1.5",
                                     timeout=15_000)
        assert await page.evaluate("document.querySelector('video.recording-player').videoWidth") == 320

        # The third chapter (Vĩnh Yên from 0:09) lies in the third segment: a click loads it and seeks.
        chapters = page.locator("button.chapter")
        assert await chapters.count() == 3
        assert "Phường Vĩnh Yên" in await chapters.nth(2).inner_text()
        await chapters.nth(2).click()
        third = segments[2]
        await page.wait_for_function(
            "([url, at]) => { const v = document.querySelector('video.recording-player');"
            " return v.currentSrc.endsWith(url) && v.currentTime >= at - 0.3 && !v.seeking; }",
            arg=[f"/recordings/{third['id']}", recs[0]["chapters"][2]["start"] - third["offset"]], timeout=15_000)
        start = await page.evaluate("document.querySelector('video.recording-player').currentTime")
        await page.wait_for_function("(at) => document.querySelector('video.recording-player').currentTime > at",
                                     arg=start + 0.5, timeout=15_000)  # and it plays on from there
        await shot(page, tmp_path, "recording-page")


async def test_every_console_says_it_records_and_the_chair_turns_it_off(server_factory: Any, sqlite_url: str,
                                                                        tmp_path: Path) -> None:
    srv: LiveServer = await server_factory(sqlite_url, recordings_dir=str(tmp_path / "rec"), recording_min_free_mb=1)
    chair = await srv.login("chutri")
    mid = await schedule(chair)
    await set_state(chair, mid, "rehearsal", "live")
    async with chromium() as browser:
        pages = {}
        for username, path in (("chutri", "chair"), ("phutho", "province/25"), ("vinhyen", "site")):
            page = pages[username] = await new_page(browser)
            await login(page, srv.url, username)
            await page.goto(f"{srv.url}/meetings/{mid}/{path}")
            await page.locator("#state[data-state='live']").wait_for()
            assert await page.locator("#recording-badge").is_hidden()  # live, but the bridge does not write yet
        bridge = await bridge_socket(srv, "BCA")
        try:
            answer = await bridge.request({"type": "recording", "meeting": mid,
                                           "report": {"type": "recording_started", "recording": "r1"}})
            assert answer["type"] == "result", answer
            for page in pages.values():
                badge = page.locator("#recording-badge")
                await badge.wait_for(state="visible")
                assert "Đang ghi hình" in await badge.inner_text()
            assert await pages["vinhyen"].locator("#recording-toggle").count() == 0  # only the chair's has it
            await pages["chutri"].locator("#recording-toggle").click()  # "Dừng ghi hình"
            await pages["chutri"].locator("#recording-toggle", has_text="Bật ghi hình").wait_for()
            async with srv.app[DB]() as db:
                assert (await recording_store.status(db, mid))["wanted"] is False
            # the bridge stops (it follows the meeting's recording.wanted) and says so
            answer = await bridge.request({"type": "recording", "meeting": mid,
                                           "report": {"type": "recording_stopped", "recording": "r1",
                                                      "reason": "disk_full"}})
            assert answer["type"] == "result", answer
            for page in pages.values():
                await page.locator("#recording-badge").wait_for(state="hidden")
            notice = pages["chutri"].locator("#recording .recording-notice")
            await notice.filter(has_text="Đĩa đầy").wait_for()
        finally:
            await bridge.close()
        await shot(pages["chutri"], tmp_path, "recording-chair-console")


async def named(srv: LiveServer, mid: int, bridges: list[str]) -> None:
    """The meeting's ``recording.bridges`` becomes ``bridges`` (the page posted it)."""
    async def now() -> bool:
        async with srv.app[DB]() as db:
            return (await recording_store.status(db, mid))["bridges"] == bridges

    await poll(now, 10, f"the provincial bridges named to be {bridges}")


async def test_the_chair_asks_a_provincial_bridge_to_record(server_factory: Any, sqlite_url: str,
                                                             tmp_path: Path) -> None:
    """The chair's console has a checkbox per provincial bridge (setting ``bridges``), in view at the
    top of the page: ticking it names that bridge in the meeting's ``recording.bridges``; a bridge
    lost while recording shows on the console as a notice, and the site pages have no such control."""
    srv: LiveServer = await server_factory(sqlite_url, recordings_dir=str(tmp_path / "rec"), recording_min_free_mb=1,
                                           bridges="BCA=http://127.0.0.1:9, 25=http://127.0.0.1:9")
    chair = await srv.login("chutri")
    mid = await schedule(chair)
    await set_state(chair, mid, "rehearsal", "live")
    async with chromium() as browser:
        page = await new_page(browser)
        await login(page, srv.url, "chutri")
        await page.goto(f"{srv.url}/meetings/{mid}/chair")
        box = page.locator("#recording-bridges input[data-bridge='25']")
        await box.wait_for()
        assert await page.locator("#recording-bridges input").count() == 1  # the central bridge always records
        assert "Phú Thọ" in await page.locator("#recording-bridges").inner_text()
        assert await box.evaluate("(el) => el.getBoundingClientRect().bottom <= window.innerHeight")
        assert not await box.is_checked()
        await box.check()
        await named(srv, mid, ["25"])

        bridge = await bridge_socket(srv, "25")  # Phú Thọ's bridge starts recording, then is lost
        answer = await bridge.request({"type": "recording", "meeting": mid,
                                       "report": {"type": "recording_started", "recording": "r-25"}})
        assert answer["type"] == "result", answer
        await page.locator("#recording-badge").wait_for(state="visible")
        await bridge.close()
        await page.locator("#recording .recording-notice", has_text="mất kết nối").wait_for()
        await page.locator("#recording-badge").wait_for(state="hidden")
        await shot(page, tmp_path, "recording-provincial-bridge")

        await box.uncheck()
        await named(srv, mid, [])
        assert not await box.is_checked()

        site = await new_page(browser)
        await login(site, srv.url, "vinhyen")
        await site.goto(f"{srv.url}/meetings/{mid}/site")
        await site.locator("#state[data-state='live']").wait_for()
        assert await site.locator("#recording-bridges").count() == 0
