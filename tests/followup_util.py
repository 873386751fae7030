"""A follow-up scenario over the seed meeting (issue #15): two of the minister's instructions to
every province, one due 31/8/2022 (A) and one 31/12/2022 (B); Vĩnh Phúc reports A at 20 % then 60 %
with a file and completes it on time, then breaks B down to two of its cities; Hà Nội completes
B; twenty days later A is overdue where it is open, and the chair marks Hồ Chí Minh City's A
done late. Counts then (open overdue, open within, done late, done on time):
Hà Nội 1/0/0/1, Phú Thọ 1/1/0/0, Hồ Chí Minh 0/1/1/0, Vĩnh Phúc 0/1/0/1 (+ the breakdown's 2 within)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from tests.conftest import Client, LiveServer
from tests.directive_util import CONCLUSION, INSTRUCTIONS, every_province, live_meeting, ok, start_seed_server
from tests.live_util import set_state

VP_SUBTREE = {"26", "243", "244", "246", "08710", "08713"}
PLAN_FILE = "ke-hoach-trien-khai.pdf"


@dataclass
class Followup:
    live: LiveServer
    chair: Client
    vp: Client
    meeting_id: int
    directive_a: int
    directive_b: int
    vp_a: int  # Vĩnh Phúc's assignment of A
    vp_b: int
    text_a: str = INSTRUCTIONS[1]


async def followup_scenario(server_factory: Callable[..., Any], db_url: str, *, conclude: bool = False) -> Followup:
    live = await start_seed_server(server_factory, db_url)
    chair = await live.login("chutri")
    meeting_id = await live_meeting(chair)
    body = await ok(await chair.api("POST", f"/api/meetings/{meeting_id}/conclusions", json={
        "text": CONCLUSION, "directives": [every_province(INSTRUCTIONS[1], deadline="2022-08-31"),
                                           every_province(INSTRUCTIONS[2], deadline="2022-12-31")]}), 201)
    (a, b) = body["directives"]
    if conclude:
        await set_state(chair, meeting_id, "concluded")
    vp = await live.login("vinhphuc")
    mine = {x["directive"]["id"]: x["id"] for x in (await ok(await vp.get("/api/directives")))["assignments"]}
    vp_a, vp_b = mine[a["id"]], mine[b["id"]]
    await ok(await vp.api("POST", f"/api/assignments/{vp_a}/reports",
                          json={"text": "Đã xây dựng kế hoạch", "percent": 20}), 201)
    form = aiohttp.FormData()
    form.add_field("text", "Đã tập huấn cán bộ")
    form.add_field("percent", "60")
    form.add_field("files", b"%PDF-1.4 ke hoach", filename=PLAN_FILE, content_type="application/pdf")
    resp = await vp.http.post(f"/api/assignments/{vp_a}/reports", data=form, headers={"X-CSRF-Token": vp.csrf})
    assert resp.status == 201, await resp.text()
    await ok(await vp.api("POST", f"/api/assignments/{vp_a}/done"))
    await ok(await vp.api("POST", f"/api/assignments/{vp_b}/breakdown", json={
        "text": "Triển khai tại thành phố", "deadline": "2022-11-30", "units": ["243", "244"]}), 201)
    hanoi = await live.login("hanoi")
    hn_b = next(x["id"] for x in (await ok(await hanoi.get("/api/directives")))["assignments"]
                if x["directive"]["id"] == b["id"])
    await ok(await hanoi.api("POST", f"/api/assignments/{hn_b}/done"))
    live.clock.advance(days=20)  # 6/9/2022: A is six days overdue where it is open
    hcm_a = next(x["id"] for x in (await ok(await chair.get("/api/directives?unit=79")))["assignments"]
                 if x["directive"]["id"] == a["id"])
    await ok(await chair.api("POST", f"/api/assignments/{hcm_a}/done"))
    return Followup(live, chair, vp, meeting_id, a["id"], b["id"], vp_a, vp_b)
