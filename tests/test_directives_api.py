"""Directives through the API: bad input refused clearly with nothing applied (database or disk),
attachments stored and served, the cascade rule configurable per directive, who may record."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
from sqlalchemy import func, select

from server.state import DB
from sessions.models import Assignment, AuditEntry, Conclusion, Directive, ProgressReport
from sessions.store import units as units_store
from sessions.store import users as users_store
from tests.conftest import _HASH, LiveServer
from tests.directive_util import (
    CONCLUSION,
    INSTRUCTIONS,
    every_province,
    live_meeting,
    ok,
    refused,
    start_seed_server,
)


async def counts(live: LiveServer) -> dict[str, int]:
    async with live.app[DB]() as db:
        return {m.__name__: int((await db.execute(select(func.count()).select_from(m))).scalar_one())
                for m in (Conclusion, Directive, Assignment, ProgressReport)}


def files_on_disk(live: LiveServer) -> list[str]:
    root = live.settings.attachment_path
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def setup(server_factory: Callable[..., Any], url: str, **overrides: Any) -> tuple[LiveServer, Any, int]:
    live = await start_seed_server(server_factory, url, **overrides)
    chair = await live.login("chutri")
    return live, chair, await live_meeting(chair)


async def test_bad_input_is_refused_and_nothing_is_applied(server_factory: Callable[..., Any], db_url: str) -> None:
    live, chair, meeting_id = await setup(server_factory, db_url)
    path = f"/api/meetings/{meeting_id}/conclusions"
    good = every_province(INSTRUCTIONS[1])
    cases = [
        ({**good, "deadline": "2022-08-16"}, 400, "deadline_past"),
        ({**good, "deadline": "31/12/2022"}, 400, "deadline_invalid"),
        ({**good, "text": "   "}, 400, "text_required"),
        ({**good, "priority": "rat-gap"}, 400, "priority_invalid"),
        ({"text": "x", "deadline": "2022-12-31"}, 400, "assignees_required"),
        ({"text": "x", "deadline": "2022-12-31", "units": ["99999"]}, 404, "unit_not_found"),
        ({**good, "require_children_done": "yes"}, 400, "directive_invalid"),
    ]
    before = await counts(live)
    for bad, status, code in cases:
        # The bad directive comes second: the conclusion and the first directive are not kept either.
        await refused(await chair.api("POST", path, json={"text": CONCLUSION, "directives": [good, bad]}), status,
                      code)
    assert await counts(live) == before == {"Conclusion": 0, "Directive": 0, "Assignment": 0, "ProgressReport": 0}

    created = await ok(await chair.api("POST", path, json={"text": CONCLUSION, "directives": [good]}), 201)
    vp = await live.login("vinhphuc")
    own = (await ok(await vp.get("/api/directives")))["assignments"][0]
    breakdown = f"/api/assignments/{own['id']}/breakdown"
    base = {"text": "Kế hoạch", "deadline": "2022-09-30"}
    for body, status, code in [
        ({**base, "units": ["01"]}, 403, "breakdown_outside_subtree"),  # another province
        ({**base, "units": ["00070"]}, 403, "breakdown_outside_subtree"),  # a commune of another province
        ({**base, "units": ["26"]}, 403, "breakdown_outside_subtree"),  # itself
        ({**base, "units": ["243"], "cooperating": ["BCA"]}, 403, "breakdown_outside_subtree"),
        ({**base, "every": {"unit": "79", "level": "commune"}}, 403, "breakdown_outside_subtree"),
        ({**base, "units": ["243"], "deadline": "2022-08-01"}, 400, "deadline_past"),
    ]:
        await refused(await vp.api("POST", breakdown, json=body), status, code)
    report = f"/api/assignments/{own['id']}/reports"
    for body, code in [({"text": "Xong", "percent": 101}, "percent_invalid"),
                       ({"text": "Xong", "percent": -1}, "percent_invalid"),
                       ({"text": "Xong", "percent": "nhiều"}, "percent_invalid"),
                       ({"text": "", "percent": 10}, "text_required")]:
        await refused(await vp.api("POST", report, json=body), 400, code)
    assert created["directives"][0]["assignments"] == 4
    assert await counts(live) == {"Conclusion": 1, "Directive": 1, "Assignment": 4, "ProgressReport": 0}
    # A viewer reads but does not report; the history shows no change.
    viewer = await live.login("xem_vinhphuc")
    await ok(await viewer.get(f"/api/assignments/{own['id']}"))
    await refused(await viewer.api("POST", report, json={"text": "Xong", "percent": 10}), 403, "forbidden")
    await refused(await viewer.api("POST", f"/api/assignments/{own['id']}/done"), 403, "forbidden")
    async with live.app[DB]() as db:
        changes = (await db.execute(select(func.count()).select_from(AuditEntry)
                                    .where(AuditEntry.target == f"assignment:{own['id']}"))).scalar_one()
    assert changes == 0


def upload(text: str, percent: str, *files: tuple[str, bytes]) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("text", text)
    form.add_field("percent", percent)
    for name, data in files:
        form.add_field("files", data, filename=name, content_type="application/octet-stream")
    return form


async def test_attachments(server_factory: Callable[..., Any], sqlite_url: str) -> None:
    live, chair, meeting_id = await setup(server_factory, sqlite_url, attachment_max_bytes=1000,
                                          attachment_types="pdf,docx")
    await ok(await chair.api("POST", f"/api/meetings/{meeting_id}/conclusions",
                             json={"text": CONCLUSION, "directives": [every_province(INSTRUCTIONS[1])]}), 201)
    vp = await live.login("vinhphuc")
    own = (await ok(await vp.get("/api/directives")))["assignments"][0]
    path = f"/api/assignments/{own['id']}/reports"
    headers = {"X-CSRF-Token": vp.csrf}

    async def post(form: aiohttp.FormData) -> aiohttp.ClientResponse:
        return await vp.http.post(path, data=form, headers=headers)

    pdf = b"%PDF-1.4 ke hoach tap huan"
    err = await refused(await post(upload("Kế hoạch", "20", ("ke-hoach.pdf", pdf), ("anh.exe", b"MZ"))), 415,
                        "attachment_type_refused")
    assert "anh.exe" in err["message"]
    await refused(await post(upload("Kế hoạch", "20", ("ke-hoach.pdf", pdf), ("lon.pdf", b"x" * 1001))), 413,
                  "attachment_too_large")
    await refused(await post(upload("Kế hoạch", "120", ("ke-hoach.pdf", pdf))), 400, "percent_invalid")
    assert files_on_disk(live) == [] and (await counts(live))["ProgressReport"] == 0

    done = await ok(await post(upload("Kế hoạch tập huấn", "20", ("Kế hoạch Đề án 06.pdf", pdf),
                                      ("bien-ban.docx", b"PK docx"))), 201)
    assert done["report"]["attachments"] == 2 and len(files_on_disk(live)) == 2
    detail = (await ok(await vp.get(f"/api/assignments/{own['id']}")))["assignment"]
    assert detail["percent"] == 20
    files = detail["reports"][0]["attachments"]
    assert [(f["filename"], f["size"], f["content_type"]) for f in files] == [
        ("Kế hoạch Đề án 06.pdf", len(pdf), "application/pdf"),
        ("bien-ban.docx", 7, "application/vnd.openxmlformats-officedocument.wordprocessingml.document")]
    resp = await vp.get(f"/api/attachments/{files[0]['id']}")
    assert resp.status == 200 and await resp.read() == pdf
    assert "filename*=UTF-8''K%E1%BA%BF" in resp.headers["Content-Disposition"]
    # The chair reaches it too; another province does not.
    assert (await chair.get(f"/api/attachments/{files[0]['id']}")).status == 200
    await refused(await (await live.login("hanoi")).get(f"/api/attachments/{files[0]['id']}"), 404,
                  "attachment_not_found")


async def test_cascade_rule_is_per_directive(server_factory: Callable[..., Any], sqlite_url: str) -> None:
    live, chair, meeting_id = await setup(server_factory, sqlite_url)
    await ok(await chair.api("POST", f"/api/meetings/{meeting_id}/conclusions", json={
        "text": CONCLUSION, "directives": [every_province(INSTRUCTIONS[0], require_children_done=False),
                                           every_province(INSTRUCTIONS[1])]}), 201)
    vp = await live.login("vinhphuc")
    loose, strict = sorted((await ok(await vp.get("/api/directives")))["assignments"],
                           key=lambda a: a["directive_id"])
    for a in (loose, strict):
        await ok(await vp.api("POST", f"/api/assignments/{a['id']}/breakdown", json={
            "text": "Kế hoạch", "deadline": "2022-09-30", "every": {"unit": "26", "level": "district"}}), 201)
    await ok(await vp.api("POST", f"/api/assignments/{loose['id']}/done"))  # not required: allowed
    await refused(await vp.api("POST", f"/api/assignments/{strict['id']}/done"), 409, "children_open")
    await refused(await vp.api("POST", f"/api/assignments/{loose['id']}/done"), 409, "assignment_done")
    await refused(await vp.api("POST", f"/api/assignments/{loose['id']}/reports",
                               json={"text": "Thêm", "percent": 100}), 409, "assignment_done")


async def test_who_records_conclusions(server_factory: Callable[..., Any], sqlite_url: str) -> None:
    live, chair, meeting_id = await setup(server_factory, sqlite_url)
    body = {"text": CONCLUSION, "directives": [every_province(INSTRUCTIONS[2])]}
    # A province's operator, a ministry viewer, or the chair before the meeting is live: refused.
    await refused(await (await live.login("vinhphuc")).api("POST", f"/api/meetings/{meeting_id}/conclusions",
                                                           json=body), 403, "chair_only")
    await refused(await (await live.login("hanoi")).api("POST", f"/api/meetings/{meeting_id}/conclusions",
                                                        json=body), 403, "chair_only")
    resp = await chair.api("POST", "/api/meetings", json={
        "title": "Họp sau", "agenda": [], "start": "2022-09-01T08:00:00+07:00",
        "participants": [{"unit": "26", "levels": ["province"]}]})
    later = (await resp.json())["meeting"]["id"]
    await refused(await chair.api("POST", f"/api/meetings/{later}/conclusions", json=body), 409, "wrong_state")
    # A secretary (an operating account of the chair's own unit) records too.
    async with live.app[DB].begin() as db:
        bca = await units_store.get_by_code(db, "BCA")
        await users_store.create_user(db, username="thuky", full_name="Thư ký", password_hash=_HASH,
                                      unit_id=bca.id, role="site_operator")
    secretary = await live.login("thuky")
    await ok(await secretary.api("POST", f"/api/meetings/{meeting_id}/conclusions",
                                 json={"text": "Ghi nhận ý kiến các địa phương"}), 201)
    # The chair records; then adds a directive to the same conclusion.
    cid = (await ok(await chair.api("POST", f"/api/meetings/{meeting_id}/conclusions", json=body), 201))[
        "conclusion"]["id"]
    added = await ok(await chair.api("POST", f"/api/conclusions/{cid}/directives", json={
        "text": "Thống nhất quy trình kết nối, chia sẻ dữ liệu số", "deadline": "2022-10-31", "units": ["26"],
        "lead": "26", "cooperating": ["01"]}), 201)
    assert added["directive"]["assignments"] == 2
    listed = (await ok(await chair.get(f"/api/meetings/{meeting_id}/conclusions")))["conclusions"]
    assert [len(c["directives"]) for c in listed] == [0, 2]
    assert {a["unit"]["code"]: a["role"] for a in listed[1]["directives"][1]["assignments"]} == {
        "26": "lead", "01": "cooperate"}
    # Once the meeting has concluded its record is closed: no more directives on its conclusions.
    resp = await chair.api("POST", f"/api/meetings/{meeting_id}/state", json={"to": "concluded"})
    assert resp.status == 200, await resp.text()
    await refused(await chair.api("POST", f"/api/conclusions/{cid}/directives", json=every_province(INSTRUCTIONS[0])),
                  409, "wrong_state")


async def test_pages(server_factory: Callable[..., Any], sqlite_url: str) -> None:
    live, chair, meeting_id = await setup(server_factory, sqlite_url)
    created = await ok(await chair.api("POST", f"/api/meetings/{meeting_id}/conclusions", json={
        "text": CONCLUSION, "directives": [every_province(INSTRUCTIONS[1]),
                                           every_province(INSTRUCTIONS[2], deadline="2022-08-31")]}), 201)
    vp = await live.login("vinhphuc")
    mine = (await ok(await vp.get("/api/directives")))["assignments"]
    training = next(a for a in mine if a["directive_id"] == created["directives"][0]["id"])
    await ok(await vp.api("POST", f"/api/assignments/{training['id']}/breakdown", json={
        "text": "Kế hoạch của các huyện", "deadline": "2022-09-30", "every": {"unit": "26", "level": "district"}}),
        201)
    page = await (await vp.get("/directives")).text()
    assert "overdue-reminder" not in page and "Nhiệm vụ được giao · Tỉnh Vĩnh Phúc" in page
    live.clock.advance(days=20)  # 6/9: instruction 3 (due 31/8) is overdue, the district plans are not yet
    page = await (await vp.get("/directives")).text()
    assert 'id="overdue-reminder"' in page and "<strong>1</strong> nhiệm vụ" in page
    assert page.index('id="bucket-open_overdue"') < page.index('id="bucket-open_within"')
    assert "quá 6 ngày" in page

    tree = await (await chair.get(f"/directives/{created['directives'][0]['id']}")).text()
    assert "Kế hoạch của các huyện" in tree and "Thành phố Phúc Yên" in tree and "Tỉnh Vĩnh Phúc" in tree
    board = await (await chair.get("/directives/dashboard")).text()
    assert 'data-unit="26"' in board and "Quá hạn chưa hoàn thành" in board
    assert '"page": "board"' in board and "/static/boot.js" in board  # boot.js starts directives.js (CSP)
    detail = await (await vp.get(f"/assignments/{training['id']}")).text()
    assert 'id="report-form"' in detail and "directive_created" not in detail
    viewer = await (await (await live.login("xem_vinhphuc")).get(f"/assignments/{training['id']}")).text()
    assert 'id="report-form"' not in viewer  # a viewer reads only
