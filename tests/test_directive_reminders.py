"""The daily overdue reminder: flags each overdue assignment once, audits the run, tells the
dashboards, emails a per-province summary only when configured; runs at the configured hour."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from server.services import reminders
from server.settings import Settings
from server.state import DEPS
from tests.directive_util import CONCLUSION, INSTRUCTIONS, every_province, live_meeting, ok, start_seed_server
from tests.live_util import WsClient


def test_next_run_is_the_next_hour_in_vietnam() -> None:
    assert reminders.next_run(datetime(2022, 9, 1, 23, 59, tzinfo=UTC), 7) == datetime(2022, 9, 2, 0, 0, tzinfo=UTC)
    assert reminders.next_run(datetime(2022, 9, 2, 0, 0, tzinfo=UTC), 7) == datetime(2022, 9, 3, 0, 0, tzinfo=UTC)
    assert reminders.next_run(datetime(2022, 9, 1, 16, 0, tzinfo=UTC), 0) == datetime(2022, 9, 1, 17, 0, tzinfo=UTC)


async def test_overdue_flagged_once_and_summarised(server_factory: Callable[..., Any], db_url: str) -> None:
    live = await start_seed_server(server_factory, db_url, reminder_email_to="vanphong@bca.gov.vn")
    chair = await live.login("chutri")
    meeting_id = await live_meeting(chair)
    await ok(await chair.api("POST", f"/api/meetings/{meeting_id}/conclusions", json={
        "text": CONCLUSION, "directives": [every_province(INSTRUCTIONS[2], deadline="2022-08-31")]}), 201)
    hanoi = await live.login("hanoi")
    own = (await ok(await hanoi.get("/api/directives")))["assignments"][0]
    await ok(await hanoi.api("POST", f"/api/assignments/{own['id']}/done"))  # Hà Nội is done in time
    sent: list[EmailMessage] = []

    def fake_send(settings: Settings, message: EmailMessage) -> None:
        sent.append(message)

    assert await reminders.run_once(live.app[DEPS], fake_send) == 0 and sent == []  # nothing overdue yet
    watch = await WsClient.open(chair)
    await watch.request({"type": "subscribe", "topic": "directives:BCA"})
    live.clock.now = datetime(2022, 9, 1, 0, 0, tzinfo=UTC)  # 07:00 on 1/9 in Hà Nội
    assert await reminders.run_once(live.app[DEPS], fake_send) == 3  # Phú Thọ, Vĩnh Phúc, Hồ Chí Minh
    await watch.until(lambda: watch.directive_events >= 1)
    assert len(sent) == 1 and sent[0]["To"] == "vanphong@bca.gov.vn"
    assert "3 nhiệm vụ mới quá hạn" in sent[0]["Subject"]
    body = sent[0].get_content()
    assert "Tỉnh Vĩnh Phúc: 1 nhiệm vụ" in body and "Hà Nội" not in body
    live.clock.advance(days=1)
    assert await reminders.run_once(live.app[DEPS], fake_send) == 0 and len(sent) == 1  # flagged once only

    vp = await live.login("vinhphuc")
    mine = (await ok(await vp.get("/api/directives")))["assignments"][0]
    assert mine["overdue_flagged_at"] == "2022-09-01T00:00:00+00:00" and mine["bucket"] == "open_overdue"
    assert "Đã nhắc việc quá hạn" in await (await vp.get(f"/assignments/{mine['id']}")).text()
    history = (await ok(await (await live.login("quantri")).get("/api/audit")))["entries"]
    assert [e["action"] for e in history].count("overdue_flagged") == 1
    await watch.close()


async def test_no_email_unless_configured(server_factory: Callable[..., Any], sqlite_url: str) -> None:
    live = await start_seed_server(server_factory, sqlite_url)
    chair = await live.login("chutri")
    meeting_id = await live_meeting(chair)
    await ok(await chair.api("POST", f"/api/meetings/{meeting_id}/conclusions", json={
        "text": CONCLUSION, "directives": [every_province(INSTRUCTIONS[2], deadline="2022-08-31")]}), 201)
    live.clock.now = datetime(2022, 9, 5, tzinfo=UTC)

    def refuse(settings: Settings, message: EmailMessage) -> None:
        raise AssertionError("no email without reminder_email_to")

    assert await reminders.run_once(live.app[DEPS], refuse) == 4
