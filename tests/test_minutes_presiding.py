"""The presiding official, urgency labels, the attendance download and the refusals of the
minutes (#15), through the real server as the chair and the sites use it.

The chair names the presiding official and the signer before the conclusion (the minutes page's
form, or ``PUT /api/meetings/{id}/presiding``); the conclusion freezes them into version 1; after
that only a correction changes them. Bad input — an empty name, a non-chair, a correction with an
empty name, recipients over the cap, a version that does not exist — gets a clear Vietnamese
message and changes nothing."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from typing import Any

from docx import Document
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy import select

from server.state import DB
from server.timefmt import VN
from sessions.minutes_rules import MAX_RECIPIENTS
from sessions.models import Meeting, MeetingMinutes
from tests.conftest import Client, LiveServer
from tests.live_util import WsClient, schedule, set_state
from tests.test_minutes_exports import exports

DOUBLED = "Chủ trì hội nghị Chủ trì hội nghị"
PRESIDING = {"title": "Thứ trưởng", "name": "Nguyễn Duy Ngọc", "signer_authority": "KT. BỘ TRƯỞNG",
             "signer_title": "THỨ TRƯỞNG", "signer_name": "Nguyễn Duy Ngọc"}
URGENCY = {"normal": "Thường", "urgent": "Khẩn", "very_urgent": "Thượng khẩn", "flash": "Hỏa tốc"}


async def presiding_columns(srv: LiveServer, mid: int) -> tuple[str, ...]:
    async with srv.app[DB]() as db:
        row = (await db.execute(select(Meeting.presiding_title, Meeting.presiding_name, Meeting.signer_authority,
                                       Meeting.signer_title, Meeting.signer_name).where(Meeting.id == mid))).one()
    return tuple(row)


async def versions(srv: LiveServer, mid: int) -> list[tuple[int, str]]:
    async with srv.app[DB]() as db:
        return [(v, h) for v, h in (await db.execute(
            select(MeetingMinutes.version, MeetingMinutes.content_hash).where(MeetingMinutes.meeting_id == mid)
            .order_by(MeetingMinutes.version))).all()]


async def live_meeting(srv: LiveServer, chair: Client) -> int:
    mid = await schedule(chair, title="Hội nghị giao ban Đề án 06 tháng 9")
    await set_state(chair, mid, "rehearsal", "live")
    return mid


async def conclude(srv: LiveServer, chair: Client, mid: int) -> list[int]:
    """Four instructions, one per urgency code (in that order); an absence; then the conclusion."""
    site = await WsClient.open(await srv.login("vinhyen"))
    await site.request({"type": "subscribe", "topic": f"meeting:{mid}"})
    assert (await site.request({"type": "join", "meeting": mid}))["type"] == "result"
    resp = await chair.api("POST", f"/api/meetings/{mid}/rollcall",
                           json={"unit": "08740", "status": "absent", "reason": "Mất điện cục bộ"})
    assert resp.status == 200, await resp.text()
    deadline = (srv.clock().astimezone(VN) + timedelta(days=30)).date().isoformat()
    resp = await chair.api("POST", f"/api/meetings/{mid}/conclusions", json={
        "text": "Các đơn vị tập trung hoàn thành chỉ tiêu Đề án 06.",
        "directives": [{"text": f"Chỉ đạo mức {code}", "deadline": deadline, "units": ["25"], "priority": code}
                       for code in URGENCY]})
    assert resp.status == 201, await resp.text()
    ids = [d["id"] for d in (await resp.json())["directives"]]
    srv.clock.advance(minutes=90)
    await set_state(chair, mid, "concluded")
    await site.close()
    return ids


def own_label(text: str, code: str) -> str:
    """The urgency printed under the instruction "Chỉ đạo mức <code>" (before the next one)."""
    start = text.index(f"Chỉ đạo mức {code}")
    end = text.find("Chỉ đạo mức ", start + 1)
    found = re.findall(r"Độ khẩn: ([^.<]+)\.", text[start:end if end > 0 else len(text)])
    assert len(found) == 1, (code, found)
    return str(found[0])


def pdf_text(data: bytes) -> str:
    return " ".join(" ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(data)).pages)


def docx_text(data: bytes) -> str:
    word = Document(io.BytesIO(data))
    return "\n".join([p.text for p in word.paragraphs] + [c.text for t in word.tables for r in t.rows for c in r.cells])


async def test_the_chair_names_the_presiding_official_before_the_conclusion(live: LiveServer) -> None:
    chair = await live.login("chutri")
    mid = await live_meeting(live, chair)
    # Before the conclusion the chair's minutes page is the form; a site still finds no minutes.
    page = await (await chair.get(f"/meetings/{mid}/minutes")).text()
    assert 'id="presiding-form"' in page and f'action="/meetings/{mid}/minutes/presiding"' in page
    assert (await (await live.login("vinhyen")).get(f"/meetings/{mid}/minutes")).status == 404
    # Refused, nothing stored: an empty name (form and JSON), someone else than the host.
    resp = await chair.post_form(f"/meetings/{mid}/minutes/presiding", {**PRESIDING, "name": "  "})
    text = await resp.text()
    assert resp.status == 400 and "Cần nhập họ tên người chủ trì hội nghị" in text and 'value="Thứ trưởng"' in text
    resp = await chair.api("PUT", f"/api/meetings/{mid}/presiding", json={**PRESIDING, "name": ""})
    body = await resp.json()
    assert (resp.status, body["error"]["code"]) == (400, "presiding_name_required"), body
    assert "họ tên người chủ trì" in body["error"]["message"]
    resp = await chair.api("PUT", f"/api/meetings/{mid}/presiding", json={"title": "Bộ trưởng", "name": "Tô Lâm",
                                                                         "signer_title": "THỨ TRƯỞNG"})
    assert (await resp.json())["error"]["code"] == "signer_name_required"
    phutho = await live.login("phutho")
    resp = await phutho.api("PUT", f"/api/meetings/{mid}/presiding", json=PRESIDING)
    assert (resp.status, (await resp.json())["error"]["code"]) == (403, "chair_only")
    assert (await phutho.post_form(f"/meetings/{mid}/minutes/presiding", PRESIDING)).status == 403
    assert await presiding_columns(live, mid) == ("", "", "", "", "")
    # Set by the form, then changed by the JSON route (the host may change it until the conclusion).
    resp = await chair.post_form(f"/meetings/{mid}/minutes/presiding", {**PRESIDING, "name": "Lương Tam Quang",
                                                                        "title": "Bộ trưởng"})
    assert resp.status == 303 and resp.headers["Location"] == f"/meetings/{mid}/minutes?presiding=1"
    page = await (await chair.get(resp.headers["Location"])).text()
    assert 'id="presiding-saved"' in page and 'value="Lương Tam Quang"' in page
    resp = await chair.api("PUT", f"/api/meetings/{mid}/presiding", json=PRESIDING)
    assert resp.status == 200 and (await resp.json()) == PRESIDING
    assert await presiding_columns(live, mid) == tuple(PRESIDING.values())

    ids = await conclude(live, chair, mid)
    minutes = (await (await chair.api("GET", f"/api/meetings/{mid}/minutes")).json())["minutes"]
    assert minutes["chair"]["title"] == "Thứ trưởng" and minutes["chair"]["name"] == "Nguyễn Duy Ngọc"
    assert minutes["signer"] == {"authority": "KT. BỘ TRƯỞNG", "title": "THỨ TRƯỞNG", "name": "Nguyễn Duy Ngọc"}
    pdf = pdf_text(await (await chair.get(f"/meetings/{mid}/minutes.pdf")).read())
    assert "Kết luận của Thứ trưởng Nguyễn Duy Ngọc tại Hội nghị giao ban Đề án 06 tháng 9" in pdf
    assert "Thứ trưởng Nguyễn Duy Ngọc chủ trì hội nghị" in pdf
    assert "KT. BỘ TRƯỞNG THỨ TRƯỞNG Nguyễn Duy Ngọc" in pdf[pdf.index("Nơi nhận:"):]
    docx = docx_text(await (await chair.get(f"/meetings/{mid}/minutes.docx")).read())
    assert "Kết luận của Thứ trưởng Nguyễn Duy Ngọc tại" in docx and "KT. BỘ TRƯỞNG\nTHỨ TRƯỞNG" in docx
    for text in (pdf, docx):
        assert DOUBLED not in text and "chutri" not in text
    # Each urgency code prints its own label, under its own instruction, in every format.
    html = await (await chair.get(f"/meetings/{mid}/minutes")).text()
    for text in (pdf, docx, html):
        assert [own_label(text, code) for code in URGENCY] == list(URGENCY.values())
    # Each instruction links to its directive's page.
    assert [int(x) for x in re.findall(r'<a href="/directives/(\d+)" class="directive-link">', html)] == ids
    # Published: the presiding official changes only by a correction now.
    resp = await chair.api("PUT", f"/api/meetings/{mid}/presiding", json={**PRESIDING, "name": "Người khác"})
    assert (resp.status, (await resp.json())["error"]["code"]) == (409, "minutes_published")
    assert await presiding_columns(live, mid) == tuple(PRESIDING.values())


async def test_without_a_presiding_official_the_notice_names_the_chairing_unit(live_sqlite: LiveServer) -> None:
    chair = await live_sqlite.login("chutri")
    mid = await live_meeting(live_sqlite, chair)
    await conclude(live_sqlite, chair, mid)
    pdf = pdf_text(await (await chair.get(f"/meetings/{mid}/minutes.pdf")).read())
    assert "Kết luận của Lãnh đạo Bộ Công an tại" in pdf
    assert "Chủ trì hội nghị Chủ trì hội nghị" not in pdf and "chutri" not in pdf


async def test_corrections_change_the_official_and_refuse_bad_input(live_sqlite: LiveServer) -> None:
    srv = live_sqlite
    chair = await srv.login("chutri")
    mid = await live_meeting(srv, chair)
    await conclude(srv, chair, mid)
    first = await versions(srv, mid)
    form = {"reason": "Ghi đúng người chủ trì", "number": "", "title": "Hội nghị giao ban Đề án 06 tháng 9",
            "chair_title": "Bộ trưởng", "chair_name": "", "signer_authority": "", "signer_title": "",
            "signer_name": "", "recipients": "Các đơn vị dự hội nghị"}
    # An empty official's name: refused (form and JSON), in Vietnamese, nothing stored.
    resp = await chair.post_form(f"/meetings/{mid}/minutes/corrections", form)
    assert resp.status == 400 and "Thiếu họ tên hoặc chức danh người chủ trì" in await resp.text()
    resp = await chair.api("POST", f"/api/meetings/{mid}/minutes/corrections", json={
        "reason": "Sửa", "changes": {"chair": {"title": "Bộ trưởng", "name": " ", "unit": "Bộ Công an"}}})
    body = await resp.json()
    assert (resp.status, body["error"]["code"]) == (400, "chair_required"), body
    # Recipients over the cap: refused, nothing stored.
    many = [f"Công an xã số {i}" for i in range(MAX_RECIPIENTS + 1)]
    resp = await chair.api("POST", f"/api/meetings/{mid}/minutes/corrections",
                           json={"changes": {"recipients": many}, "reason": "Bổ sung nơi nhận"})
    body = await resp.json()
    assert (resp.status, body["error"]["code"]) == (400, "recipients_too_many")
    assert body["error"]["message"] == f"Tối đa {MAX_RECIPIENTS} nơi nhận (đã gửi {MAX_RECIPIENTS + 1})"
    assert await versions(srv, mid) == first
    # A version that does not exist: no file, no rendering, nothing cached.
    before = await exports(chair)
    for path in (f"/meetings/{mid}/minutes.pdf?version=2", f"/meetings/{mid}/minutes.docx?version=9",
                 f"/meetings/{mid}/minutes/present.csv?version=2", f"/api/meetings/{mid}/minutes?version=2"):
        resp = await chair.get(path)
        said = (await resp.json())["error"]["message"] if path.startswith("/api/") else await resp.text()
        assert resp.status == 404 and f"Không có biên bản phiên bản {path[-1]}" in said, (path, said)
    assert await exports(chair) == before and await versions(srv, mid) == first
    # A correction names the presiding official and the signer: version 2 says so; version 1 is kept.
    resp = await chair.post_form(f"/meetings/{mid}/minutes/corrections", {
        **form, "chair_name": "Tô Lâm", "signer_authority": "TL. BỘ TRƯỞNG", "signer_title": "CHÁNH VĂN PHÒNG",
        "signer_name": "Nguyễn Văn A"})
    assert resp.status == 303 and resp.headers["Location"].endswith("?version=2")
    pdf = pdf_text(await (await chair.get(f"/meetings/{mid}/minutes.pdf?version=2")).read())
    assert "Kết luận của Bộ trưởng Tô Lâm tại" in pdf
    assert "TL. BỘ TRƯỞNG CHÁNH VĂN PHÒNG Nguyễn Văn A" in pdf[pdf.index("Nơi nhận:"):]
    assert (await versions(srv, mid))[0] == first[0]
    v1 = pdf_text(await (await chair.get(f"/meetings/{mid}/minutes.pdf?version=1")).read())
    assert "Kết luận của Lãnh đạo Bộ Công an tại" in v1


async def test_the_sites_present_are_a_download(live_sqlite: LiveServer) -> None:
    srv = live_sqlite
    chair = await srv.login("chutri")
    mid = await live_meeting(srv, chair)
    await conclude(srv, chair, mid)
    doc: dict[str, Any] = (await (await chair.api("GET", f"/api/meetings/{mid}/minutes")).json())["minutes"]
    present = [s["unit_name"] for s in doc["attendance"] if s["status"].startswith("present")]
    assert present and "Phường Vĩnh Yên" in present
    page = await (await chair.get(f"/meetings/{mid}/minutes")).text()
    assert f'href="/meetings/{mid}/minutes/present.csv?version=1"' in page
    resp = await (await srv.login("vinhyen")).get(f"/meetings/{mid}/minutes/present.csv")
    assert resp.status == 200 and resp.headers["Content-Disposition"].endswith(f'-{mid}-v1.csv"')
    rows = list(csv.reader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
    assert rows[0] == ["STT", "Mã đơn vị", "Điểm cầu", "Cấp", "Tỉnh, thành phố", "Tình trạng"]
    assert [r[2] for r in rows[1:]] == present and "Phường Phúc Yên" not in {r[2] for r in rows}
    resp = await chair.get(f"/meetings/{mid}/minutes/present.xlsx?version=1")
    assert resp.status == 200
    sheet = load_workbook(io.BytesIO(await resp.read())).active
    assert sheet is not None
    assert [row[2] for row in sheet.iter_rows(min_row=3, values_only=True)] == present
