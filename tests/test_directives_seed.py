"""The seed meeting replayed end to end through the API, on both databases: the minister's closing
instructions become directives to every provincial police due 31/12/2022; the minutes frozen at the
end list the attendance, the KPI snapshot and every instruction; the Vĩnh Phúc police
break one down to their units; as the injected clock passes deadlines and progress arrives,
assignments move through all four buckets, the dashboards follow live, and every change is in
the assignment's history."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from tests.conftest import LiveServer
from tests.directive_util import (
    CONCLUSION,
    DUE,
    INSTRUCTIONS,
    PROVINCES,
    VP_GUIDES,
    VP_PLAN,
    every_province,
    live_meeting,
    ok,
    refused,
    start_seed_server,
)
from tests.live_util import WsClient
from tests.seed_minutes import seed_path
from tests.test_kpi_store import seed_reports


def test_instructions_are_the_seed_reports() -> None:
    """The quoted instructions are the seed report's own words."""
    text = " ".join(seed_path().read_text(encoding="utf-8").split())
    for sentence in INSTRUCTIONS:
        assert sentence.split(", ", 1)[1][:120] in text or sentence[:120] in text


def by_code(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["unit"]["code"]: i for i in items}


async def dashboard(c: Any, unit: str = "BCA", **query: Any) -> dict[str, dict[str, int]]:
    params = "&".join(f"{k}={v}" for k, v in {"unit": unit, **query}.items())
    body = await ok(await c.get(f"/api/directives/dashboard?{params}"))
    return {row["unit"]["code"]: row["counts"] for row in body["rows"]}


async def test_seed_meeting_end_to_end(server_factory: Callable[..., Any], db_url: str) -> None:
    live: LiveServer = await start_seed_server(server_factory, db_url)
    clock = live.clock
    chair, vp = await live.login("chutri"), await live.login("vinhphuc")
    meeting_id = await live_meeting(chair)

    watch = await WsClient.open(chair)
    assert (await watch.request({"type": "subscribe", "topic": "directives:BCA"}))["type"] == "result"
    assert watch.dashboards["BCA"]["total"] == 0

    # 15:00 on 17/8: the minister concludes; three instructions to every provincial police.
    concluded = await ok(await chair.api("POST", f"/api/meetings/{meeting_id}/conclusions", json={
        "text": CONCLUSION, "directives": [every_province(t, priority="urgent") for t in INSTRUCTIONS]}), 201)
    directive_ids = [d["id"] for d in concluded["directives"]]
    assert [d["assignments"] for d in concluded["directives"]] == [4, 4, 4]
    await watch.until(lambda: watch.directive_events >= 1)

    listed = (await ok(await chair.get(f"/api/meetings/{meeting_id}/conclusions")))["conclusions"]
    assert listed[0]["text"] == CONCLUSION
    assert [d["text"] for d in listed[0]["directives"]] == list(INSTRUCTIONS)
    assert all(d["deadline"] == DUE and d["priority_label"] == "Khẩn" for d in listed[0]["directives"])
    assert {a["unit"]["code"] for a in listed[0]["directives"][1]["assignments"]} == set(PROVINCES)
    assert await dashboard(chair) == {p: {"open_overdue": 0, "open_within": 3, "done_late": 0, "done_on_time": 0}
                                      for p in PROVINCES}

    # 15:30: the minister closes the meeting. Its record froze into the minutes: the roll call (Vĩnh
    # Phúc online, Hồ Chí Minh City absent with its reason), the seed's national figures as they
    # stood at the end, and every instruction with its assignees and deadline.
    admin = await live.login("quantri")
    await ok(await admin.api("POST", "/api/kpi/reports", json={"reports": seed_reports("campaign")}))
    site = await WsClient.open(vp)
    await site.request({"type": "subscribe", "topic": f"meeting:{meeting_id}"})
    assert (await site.request({"type": "join", "meeting": meeting_id}))["type"] == "result"
    await ok(await chair.api("POST", f"/api/meetings/{meeting_id}/rollcall",
                             json={"unit": "79", "status": "absent", "reason": "Mất kết nối đường truyền"}))
    clock.advance(minutes=30)
    await ok(await chair.api("POST", f"/api/meetings/{meeting_id}/state", json={"to": "concluded"}))
    await site.close()
    minutes = (await ok(await chair.get(f"/api/meetings/{meeting_id}/minutes")))["minutes"]
    sites = {a["unit_code"]: a for a in minutes["attendance"]}
    assert sites["26"]["status"] == "present_online"
    assert (sites["79"]["status"], sites["79"]["reason"]) == ("absent", "Mất kết nối đường truyền")
    assert len(sites) == len(minutes["attendance"]) >= len(PROVINCES) + 5  # provinces, districts, communes
    figures = {k["code"]: (k["num"], k["den"]) for k in minutes["kpis"]}
    assert figures["DVC_TY_LE_DUNG_HAN"] == (74_336, 74_587)
    assert figures["CU_TRU_TRUC_TUYEN"] == (50_579, 70_758) and figures["HO_CHIEU_TRUC_TUYEN"] == (5_862, 6_302)
    [recorded] = minutes["conclusions"]
    assert recorded["text"] == CONCLUSION
    assert [d["text"] for d in recorded["directives"]] == list(INSTRUCTIONS)
    assert all(d["deadline"] == DUE and len(d["assignees"]) == len(PROVINCES) for d in recorded["directives"])

    # Vĩnh Phúc sees its three assignments (and only its own), all within the deadline.
    mine = (await ok(await vp.get("/api/directives")))["assignments"]
    assert [(a["unit"]["code"], a["bucket"]) for a in mine] == [("26", "open_within")] * 3
    training = next(a for a in mine if a["directive_id"] == directive_ids[1])

    # The same evening Colonel Khoa breaks instruction 2 down: a plan from every district-level
    # unit by 30/9, and guides at the wards of Vĩnh Yên (Tích Sơn leads, Liên Bảo cooperates) by 31/10.
    clock.advance(hours=3)
    plan = (await ok(await vp.api("POST", f"/api/assignments/{training['id']}/breakdown", json={
        "text": VP_PLAN, "deadline": "2022-09-30", "every": {"unit": "26", "level": "district"}}), 201))["directive"]
    guides = (await ok(await vp.api("POST", f"/api/assignments/{training['id']}/breakdown", json={
        "text": VP_GUIDES, "deadline": "2022-10-31", "units": ["08710"], "lead": "08710",
        "cooperating": ["08713"], "priority": "very_urgent"}), 201))["directive"]
    assert (plan["assignments"], guides["assignments"]) == (3, 2)

    tree = (await ok(await chair.get(f"/api/directives/{directive_ids[1]}")))["directive"]
    vp_node = by_code(tree["assignments"])["26"]
    assert [d["text"] for d in vp_node["breakdown"]] == [VP_PLAN, VP_GUIDES]
    assert {a["unit"]["code"]: a["role"] for a in vp_node["breakdown"][1]["assignments"]} == {
        "08710": "lead", "08713": "cooperate"}
    assert vp_node["rollup"] == {"total": 5, "open": 5, "percent": 0, "counts": {
        "open_overdue": 0, "open_within": 5, "done_late": 0, "done_on_time": 0}}

    # 20/9: Vĩnh Yên reports half, then its plan is done — on time.
    clock.now = clock.now.replace(month=9, day=20)
    tp = await live.login("tp_vinhyen")
    vy = next(a for a in (await ok(await tp.get("/api/directives")))["assignments"] if a["directive_id"] == plan["id"])
    await ok(await tp.api("POST", f"/api/assignments/{vy['id']}/reports",
                          json={"text": "Đã dự thảo kế hoạch, đang xin ý kiến", "percent": 50}), 201)
    await ok(await tp.api("POST", f"/api/assignments/{vy['id']}/done"))
    # The province may not close its part while its units are still at work.
    err = await refused(await vp.api("POST", f"/api/assignments/{training['id']}/done"), 409, "children_open")
    assert "4 nhiệm vụ cấp dưới" in err["message"]

    # 1/10 (00:30 in Hà Nội, still 30/9 in UTC): Phúc Yên and Lập Thạch are overdue.
    clock.now = clock.now.replace(month=9, day=30, hour=17, minute=30)
    counts = await dashboard(vp, "26", depth=1)
    assert counts == {"26": {"open_overdue": 2, "open_within": 2, "done_late": 0, "done_on_time": 1}}
    overdue = (await ok(await (await live.login("phucyen")).get("/api/directives")))["assignments"]
    assert (overdue[0]["bucket"], overdue[0]["days_overdue"]) == ("open_overdue", 1)

    # 5/10: both report late; the wards finish on 20/10, on time.
    clock.now = clock.now.replace(month=10, day=5)
    for name in ("phucyen", "lapthach"):
        c = await live.login(name)
        own = (await ok(await c.get("/api/directives")))["assignments"][0]
        await ok(await c.api("POST", f"/api/assignments/{own['id']}/done"))
    clock.now = clock.now.replace(day=20)
    for name in ("tichson", "lienbao"):
        c = await live.login(name)
        own = (await ok(await c.get("/api/directives")))["assignments"][0]
        await ok(await c.api("POST", f"/api/assignments/{own['id']}/reports",
                             json={"text": "Đã bố trí 2 cán bộ hướng dẫn", "percent": 100}), 201)
        await ok(await c.api("POST", f"/api/assignments/{own['id']}/done"))
    assert await dashboard(vp, "26", depth=1) == {"26": {"open_overdue": 0, "open_within": 0, "done_late": 2,
                                                         "done_on_time": 3}}

    # 23:00 on 31/12 in Hà Nội: Vĩnh Phúc closes instruction 2, on time, its breakdown done.
    clock.now = clock.now.replace(month=12, day=31, hour=16, minute=0)
    await ok(await vp.api("POST", f"/api/assignments/{training['id']}/reports",
                          json={"text": "Đã tập huấn 100% CBCS; bố trí hai luồng nộp hồ sơ", "percent": 100}), 201)
    events = watch.directive_events
    await ok(await vp.api("POST", f"/api/assignments/{training['id']}/done"))
    await watch.until(lambda: watch.directive_events > events)

    # 1/1/2023: everything still open is overdue. Vĩnh Phúc finishes the other two on 3/1: late.
    clock.advance(hours=2)
    counts = await dashboard(chair, depth=0)
    assert counts["26"] == {"open_overdue": 2, "open_within": 0, "done_late": 0, "done_on_time": 1}
    assert counts["01"] == counts["25"] == counts["79"] == {"open_overdue": 3, "open_within": 0, "done_late": 0,
                                                            "done_on_time": 0}
    clock.advance(days=2)
    for a in mine:
        if a["id"] != training["id"]:
            await ok(await vp.api("POST", f"/api/assignments/{a['id']}/done"))
    final = await dashboard(chair)
    assert final["26"] == {"open_overdue": 0, "open_within": 0, "done_late": 4, "done_on_time": 4}
    mine = (await ok(await vp.get("/api/directives")))["assignments"]
    assert [a["bucket"] for a in mine] == ["done_late", "done_late", "done_on_time"]  # overdue first
    seen_buckets = {b for row in (await dashboard(chair)).values() for b, n in row.items() if n}
    assert seen_buckets == {"open_overdue", "done_late", "done_on_time"}  # and open_within above

    # The history of Vĩnh Phúc's assignment: who, when, before and after.
    detail = (await ok(await vp.get(f"/api/assignments/{training['id']}")))["assignment"]
    assert [h["action"] for h in detail["history"]] == ["assignment_progress", "assignment_done"]
    assert detail["history"][0]["before"] == {"percent": 0, "completed_at": None}
    assert detail["history"][1]["after"]["percent"] == 100 and detail["history"][1]["who"] == "vinhphuc"
    assert detail["bucket"] == "done_on_time" and detail["rollup"]["open"] == 0
    await watch.close()


async def test_chair_dashboard_counts_move_live(server_factory: Callable[..., Any], sqlite_url: str) -> None:
    live = await start_seed_server(server_factory, sqlite_url)
    chair, vp = await live.login("chutri"), await live.login("vinhphuc")
    meeting_id = await live_meeting(chair)
    watch_chair, watch_hanoi = await WsClient.open(chair), await WsClient.open(await live.login("hanoi"))
    await watch_chair.request({"type": "subscribe", "topic": "directives:BCA"})
    await watch_hanoi.request({"type": "subscribe", "topic": "directives:01"})
    await ok(await chair.api("POST", f"/api/meetings/{meeting_id}/conclusions",
                             json={"text": CONCLUSION, "directives": [every_province(INSTRUCTIONS[0])]}), 201)
    await watch_chair.until(lambda: watch_chair.directive_events == 1)
    await watch_hanoi.until(lambda: watch_hanoi.directive_events == 1)
    own = (await ok(await vp.get("/api/directives")))["assignments"][0]
    live.clock.advance(days=1)
    await ok(await vp.api("POST", f"/api/assignments/{own['id']}/done"))
    await watch_chair.until(lambda: watch_chair.directive_events == 2)
    assert (await dashboard(chair))["26"]["done_on_time"] == 1
    # Hà Nội's dashboard is not told about Vĩnh Phúc's progress.
    live.clock.advance(seconds=1)
    assert watch_hanoi.directive_events == 1
    for ws in (watch_chair, watch_hanoi):
        await ws.close()


async def test_clock_days_are_vietnamese(server_factory: Callable[..., Any], sqlite_url: str) -> None:
    """A deadline of "today" is accepted at 01:00 in Hà Nội although UTC is still yesterday."""
    live = await start_seed_server(server_factory, sqlite_url)
    chair = await live.login("chutri")
    meeting_id = await live_meeting(chair)
    live.clock.now = live.clock.now.replace(hour=18) + timedelta(0)  # 01:00 on 18/8 in Hà Nội
    await ok(await chair.api("POST", f"/api/meetings/{meeting_id}/conclusions", json={
        "text": CONCLUSION, "directives": [every_province(INSTRUCTIONS[0], deadline="2022-08-18")]}), 201)
    await refused(await chair.api("POST", f"/api/meetings/{meeting_id}/conclusions", json={
        "text": CONCLUSION, "directives": [every_province(INSTRUCTIONS[0], deadline="2022-08-17")]}), 400,
        "deadline_past")
