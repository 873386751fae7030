"""A concluded meeting's minutes, end to end through the real server: frozen at conclusion
(attendance with reasons, floor history, KPI snapshot, conclusions and directives), readable as
HTML, PDF and DOCX by those whose unit took part, corrected only as new versions by the chair —
version 1 stays byte for byte what was published."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from docx import Document
from pypdf import PdfReader
from sqlalchemy import select

from server.state import DB
from server.timefmt import VN
from sessions.models import MeetingMinutes
from tests.conftest import Client, LiveServer
from tests.live_util import WsClient, schedule, set_state

DIRECTIVE = "Tiếp tục đẩy mạnh tiếp nhận hồ sơ đăng ký cư trú trực tuyến, bảo đảm đúng hạn"


async def concluded_meeting(srv: LiveServer) -> tuple[int, Client]:
    chair = await srv.login("chutri")
    admin = await srv.login("quantri")
    reports = [{"report_id": "m-on-time", "unit": "08707", "indicator": "DVC_TY_LE_DUNG_HAN", "period": "campaign",
                "value": 74_336, "denominator": 74_587}]
    assert (await admin.api("POST", "/api/kpi/reports", json={"reports": reports})).status == 200
    mid = await schedule(chair, title="Hội nghị giao ban Đề án 06 tháng 8")
    await set_state(chair, mid, "rehearsal", "live")
    site = await WsClient.open(await srv.login("vinhyen"))
    await site.request({"type": "subscribe", "topic": f"meeting:{mid}"})
    assert (await site.request({"type": "join", "meeting": mid}))["type"] == "result"
    for body in ({"action": "grant", "unit": "08707", "confirm": True}, {"action": "revoke"}):
        resp = await chair.api("POST", f"/api/meetings/{mid}/floor", json=body)
        assert resp.status == 200, await resp.text()
    resp = await chair.api("POST", f"/api/meetings/{mid}/rollcall",
                           json={"unit": "08740", "status": "absent", "reason": "Mất điện cục bộ"})
    assert resp.status == 200, await resp.text()
    deadline = (srv.clock().astimezone(VN) + timedelta(days=30)).date().isoformat()
    resp = await chair.api("POST", f"/api/meetings/{mid}/conclusions", json={
        "text": "Bộ trưởng kết luận: các đơn vị tập trung hoàn thành chỉ tiêu Đề án 06.",
        "directives": [{"text": DIRECTIVE, "deadline": deadline, "units": ["25", "01"], "lead": "25"}]})
    assert resp.status == 201, await resp.text()
    srv.clock.advance(minutes=90)
    await set_state(chair, mid, "concluded")
    await site.close()
    return mid, chair


async def test_conclusion_freezes_the_minutes(live: LiveServer) -> None:
    mid, chair = await concluded_meeting(live)
    resp = await chair.api("GET", f"/api/meetings/{mid}/minutes")
    body = await resp.json()
    assert resp.status == 200, body
    doc = body["minutes"]
    assert (body["version"], doc["version"], doc["title"]) == (1, 1, "Hội nghị giao ban Đề án 06 tháng 8")
    sites = {a["unit_code"]: a for a in doc["attendance"]}
    assert sites["08707"]["status"] == "present_online"
    assert (sites["08740"]["status"], sites["08740"]["reason"]) == ("absent", "Mất điện cục bộ")
    assert [t["unit_name"] for t in doc["floor"]] == ["Phường Vĩnh Yên"]
    on_time = next(k for k in doc["kpis"] if k["code"] == "DVC_TY_LE_DUNG_HAN")
    assert (on_time["num"], on_time["den"]) == (74_336, 74_587)
    [conclusion] = doc["conclusions"]
    [directive] = conclusion["directives"]
    assert directive["text"] == DIRECTIVE and directive["lead"] == "Phú Thọ"
    assert sorted(directive["assignees"]) == ["Phú Thọ", "Thành phố Hà Nội"]
    assert body["versions"][0]["reason"] == ""

    # The exports carry the same content, Vietnamese intact.
    pdf = await chair.get(f"/meetings/{mid}/minutes.pdf")
    assert pdf.status == 200 and pdf.content_type == "application/pdf"
    text = " ".join((p.extract_text() or "") for p in PdfReader(io.BytesIO(await pdf.read())).pages)
    flat = " ".join(text.split())
    assert "THÔNG BÁO" in flat and "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" in flat
    assert " ".join(DIRECTIVE.split()) in flat, flat[:2000]
    docx = await chair.get(f"/meetings/{mid}/minutes.docx")
    assert docx.status == 200
    word = Document(io.BytesIO(await docx.read()))
    words = "\n".join([p.text for p in word.paragraphs]
                      + [c.text for t in word.tables for row in t.rows for c in row.cells])
    assert DIRECTIVE in words and "Mất điện cục bộ" in words and "Phường Vĩnh Yên" in words
    page = await (await (await live.login("vinhyen")).get(f"/meetings/{mid}/minutes")).text()
    assert DIRECTIVE in page and "correction-form" not in page  # a site reads; only the chair corrects


async def stored(srv: LiveServer, mid: int) -> list[tuple[int, str, str]]:
    async with srv.app[DB]() as db:
        return [(v, h, d) for v, h, d in (await db.execute(
            select(MeetingMinutes.version, MeetingMinutes.content_hash, MeetingMinutes.document)
            .where(MeetingMinutes.meeting_id == mid).order_by(MeetingMinutes.version))).all()]


async def test_corrections_are_new_versions_and_published_ones_never_change(live: LiveServer) -> None:
    mid, chair = await concluded_meeting(live)
    [first] = await stored(live, mid)
    form = {"number": "125", "title": "Hội nghị giao ban Đề án 06 tháng 8", "chair_title": "Bộ trưởng",
            "chair_name": "Tô Lâm", "recipients": "Các đơn vị dự hội nghị\nVăn phòng Bộ"}
    # No reason: refused, what was typed kept, nothing stored.
    resp = await chair.post_form(f"/meetings/{mid}/minutes/corrections", {**form, "reason": ""})
    text = await resp.text()
    assert resp.status == 400 and "lý do" in text and 'value="Tô Lâm"' in text
    # Someone else than the chair: refused.
    phutho = await live.login("phutho")
    resp = await phutho.post_form(f"/meetings/{mid}/minutes/corrections", {**form, "reason": "Sửa"})
    assert resp.status == 403
    resp = await phutho.api("POST", f"/api/meetings/{mid}/minutes/corrections",
                            json={"reason": "Sửa", "changes": {"number": "1"}})
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "chair_only"
    assert await stored(live, mid) == [first]

    resp = await chair.post_form(f"/meetings/{mid}/minutes/corrections", {**form, "reason": "Ghi đúng số và chức danh"})
    assert resp.status == 303 and resp.headers["Location"] == f"/meetings/{mid}/minutes?version=2"
    v2 = await (await chair.api("GET", f"/api/meetings/{mid}/minutes")).json()
    assert (v2["version"], v2["minutes"]["number"], v2["minutes"]["chair"]["name"]) == (2, "125", "Tô Lâm")
    assert v2["minutes"]["supersedes"] == first[1] and v2["versions"][1]["reason"] == "Ghi đúng số và chức danh"
    v1 = await (await chair.api("GET", f"/api/meetings/{mid}/minutes?version=1")).json()
    assert v1["hash"] == first[1] and v1["minutes"]["number"] == ""
    # The bookkeeping of a version cannot be "corrected"; version 1 is still exactly what was stored.
    for changes in ({"version": 1}, {"published_at": "2020-01-01T00:00:00+00:00"}, {}):
        resp = await chair.api("POST", f"/api/meetings/{mid}/minutes/corrections",
                               json={"reason": "thử", "changes": changes})
        assert resp.status == 400, changes
    stored_now = await stored(live, mid)
    assert stored_now[0] == first and [v for v, _h, _d in stored_now] == [1, 2]
    # No route edits or deletes minutes.
    for method in ("PUT", "PATCH", "DELETE"):
        for path in (f"/meetings/{mid}/minutes", f"/api/meetings/{mid}/minutes"):
            resp = await chair.api(method, path, json={"number": "9"})
            assert resp.status in (404, 405), (method, path, resp.status)
    assert (await stored(live, mid))[0] == first


@pytest.mark.parametrize("username", ["hoankiem", "xem_hanoi"])
async def test_minutes_outside_reach_do_not_exist(live: LiveServer, username: str) -> None:
    chair = await live.login("chutri")
    mid = await schedule(chair, participants=[{"unit": "25", "levels": ["province", "commune"]}])
    await set_state(chair, mid, "rehearsal", "live", "concluded")
    c = await live.login(username)
    for path in (f"/api/meetings/{mid}/minutes", f"/meetings/{mid}/minutes", f"/meetings/{mid}/minutes.pdf",
                 f"/meetings/{mid}/minutes.docx"):
        resp = await c.get(path)
        assert resp.status == 404, (path, resp.status)
    ok = await (await live.login("vinhyen")).get(f"/api/meetings/{mid}/minutes")
    assert ok.status == 200


async def test_no_minutes_before_conclusion(live: LiveServer) -> None:
    chair = await live.login("chutri")
    mid = await schedule(chair)
    await set_state(chair, mid, "rehearsal", "live")
    resp = await chair.api("GET", f"/api/meetings/{mid}/minutes")
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "minutes_not_found"
    bad = await chair.api("GET", f"/api/meetings/{mid}/minutes?version=x")
    assert bad.status == 400


