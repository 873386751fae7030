"""Issue #13, finding 10: NUL and the other C0/C1 control characters are refused wherever text is
stored (one rule: ``sessions.values.clean_text`` / ``reject_controls``). Single-line fields —
names, titles, usernames, unit names, token names, file names — take none; multi-line fields —
reasons, directive and report texts, minutes — keep line breaks and tabs only. Refused input
changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from server.state import DB
from sessions import values
from sessions.errors import ImportRejected, ValidationFailed
from sessions.models import Participant
from sessions.store import units as units_store
from sessions.units import Level, UnitRow
from tests.conftest import TREE, LiveServer
from tests.test_scope import changed, fixture_ids, session_client, snapshot

MEETING = "/api/meetings/{meeting_shared}"
START = "2099-01-01T08:00"
EVERYONE = [{"unit": "01", "levels": ["province"]}]


@dataclass(frozen=True)
class Typed:
    label: str
    who: str
    path: str
    json: Any = None
    csv: str | None = None
    multipart: bytes | None = None
    form: dict[str, str] | None = None
    status: int = 400
    code: str | None = "text_control_char"


def _file_part(filename: str) -> bytes:
    return (b'--b0undary\r\nContent-Disposition: form-data; name="text"\r\n\r\nx\r\n'
            b'--b0undary\r\nContent-Disposition: form-data; name="percent"\r\n\r\n10\r\n'
            b'--b0undary\r\nContent-Disposition: form-data; name="files"; filename="' + filename.encode() +
            b'"\r\n\r\n%PDF-1.4\r\n--b0undary--\r\n')


def _indicator(name: str) -> dict[str, str]:
    return {"code": "CHI_TIEU_MOI", "name": name, "kind": "count", "unit": "hồ sơ", "direction": "higher",
            "target": "100", "green_at": "90", "amber_at": "50", "period": "month"}


TYPED = [
    Typed("meeting title NUL", "chutri", "/api/meetings",
          {"title": "Hội\x00nghị", "start": START, "participants": EVERYONE}),
    Typed("meeting title C1", "chutri", "/api/meetings",
          {"title": "Hội nghị\x85", "start": START, "participants": EVERYONE}),
    Typed("meeting title newline", "chutri", "/api/meetings",
          {"title": "Hội nghị\nthứ hai", "start": START, "participants": EVERYONE}),
    Typed("agenda item", "chutri", "/api/meetings",
          {"title": "Hội nghị", "agenda": ["Khai\x07mạc"], "start": START, "participants": EVERYONE}),
    Typed("absence reason", "chutri", f"{MEETING}/rollcall",
          {"unit": "00070", "status": "absent", "reason": "Mất\x00điện"}),
    Typed("conclusion text", "chutri", f"{MEETING}/conclusions", {"text": "Kết luận\x1b[31m"}),
    Typed("directive text", "chutri", f"{MEETING}/conclusions",
          {"text": "Kết luận", "directives": [{"text": "Giao\x00việc", "deadline": "2099-01-01", "units": ["01"]}]}),
    Typed("breakdown text", "hanoi", "/api/assignments/{assignment_01}/breakdown",
          {"text": "Tập\x00huấn", "deadline": "2099-01-01", "units": ["00070"]}),
    Typed("progress report text", "hanoi", "/api/assignments/{assignment_01}/reports",
          {"text": "Đã\x00xong", "percent": 50}),
    Typed("minutes title", "chutri", "/api/meetings/{meeting_done}/minutes/corrections",
          {"reason": "Sai tên", "changes": {"title": "Hội nghị\tmới"}}),
    Typed("minutes recipient", "chutri", "/api/meetings/{meeting_done}/minutes/corrections",
          {"reason": "Thiếu nơi nhận", "changes": {"recipients": ["Công an\x00tỉnh"]}}),
    Typed("minutes correction reason", "chutri", "/api/meetings/{meeting_done}/minutes/corrections",
          {"reason": "Sai\x00tên", "changes": {"title": "Hội nghị mới"}}),
    Typed("token name", "quantri", "/api/tokens",
          {"name": "cau\x00noi", "unit_code": "01", "scopes": ["units:read"], "days": 1}),
    Typed("username", "quantri", "/api/users",
          {"username": "abc\x00d", "full_name": "A", "unit_code": "01", "role": "viewer", "password": "mk-dai-du-12"}),
    Typed("full name", "quantri", "/api/users",
          {"username": "nguoimoi", "full_name": "Nguyễn\x0bAn", "unit_code": "01", "role": "viewer",
           "password": "mk-dai-du-12"}),
    Typed("unit name (API import)", "quantri", "/api/units/import", csv="BCA,B\x00o,central,\n",
          code="import_rejected"),
    Typed("unit name with a tab (API import)", "quantri", "/api/units/import", csv="01,Hà\tNội,province,BCA\n",
          code="import_rejected"),
    Typed("attachment file name", "hanoi", "/api/assignments/{assignment_01}/reports",
          multipart=_file_part("bao%01cao.pdf")),
    Typed("indicator name (admin page)", "quantri", "/admin/indicators", form=_indicator("Chỉ\x00tiêu"), code=None),
    Typed("unit name (import page)", "quantri", "/admin/units/import", csv="BCA,B\x00o,central,\n", code=None),
]


async def _send(c: Any, t: Typed, ids: dict[str, int]) -> aiohttp.ClientResponse:
    path = t.path.format(**ids)
    headers = {"X-CSRF-Token": c.csrf}
    if t.json is not None:
        return await c.http.post(path, json=t.json, headers=headers)
    if t.multipart is not None:
        return await c.http.post(path, data=t.multipart, headers={
            **headers, "Content-Type": "multipart/form-data; boundary=b0undary"})
    if t.form is not None:
        return await c.http.post(path, data=t.form, headers=headers)
    assert t.csv is not None
    body = ("code,name,level,parent_code\n" + t.csv).encode()
    if path.startswith("/api/"):
        return await c.http.post(path, data=body, headers={**headers, "Content-Type": "text/csv"})
    form = aiohttp.FormData()
    form.add_field("file", body, filename="don-vi.csv", content_type="text/csv")
    return await c.http.post(path, data=form, headers=headers)


async def test_control_characters_are_refused_in_every_stored_text(live: LiveServer) -> None:
    ids = await fixture_ids(live)
    clients = {name: await session_client(live, name) for name in {t.who for t in TYPED}}
    before = await snapshot(live)
    wrong = []
    for t in TYPED:
        resp = await _send(clients[t.who], t, ids)
        text = await resp.text()
        error = (await resp.json())["error"] if t.code is not None and resp.status == t.status else None
        if resp.status != t.status:
            wrong.append(f"{t.label}: {resp.status} {text[:200]}")
        elif error is not None and error["code"] != t.code:
            wrong.append(f"{t.label}: {text[:200]}")
        elif "điều khiển" not in (error["message"] if error is not None else text):  # says why, in Vietnamese
            wrong.append(f"{t.label}: the message does not say why: {text[:300]}")
    assert not wrong, "\n".join(wrong)
    assert changed(before, await snapshot(live)) == set()

    # Multi-line fields keep their line breaks (a browser's CR LF becomes LF) and tabs.
    chair = clients["chutri"]
    resp = await chair.api("POST", f"/api/meetings/{ids['meeting_shared']}/rollcall",
                           json={"unit": "00070", "status": "absent", "reason": "Mất điện\r\ndo bão\tlớn"})
    assert resp.status == 200, await resp.text()
    async with live.app[DB]() as db:
        reasons = (await db.execute(select(Participant.reason).where(
            Participant.meeting_id == ids["meeting_shared"], Participant.unit_id == ids["unit_00070"]))).scalars()
        assert list(reasons) == ["Mất điện\ndo bão\tlớn"]
    resp = await chair.api("POST", f"/api/meetings/{ids['meeting_shared']}/conclusions",
                           json={"text": "Một là…\nHai là…"})
    assert resp.status == 201, await resp.text()


async def test_an_import_renaming_the_ministry_with_nul_changes_nothing(session_factory: Any) -> None:
    async with session_factory() as db, db.begin():
        await units_store.import_units(db, list(TREE))
    for name in ("B\x00o", "Bộ Công an\x7f", "Bộ\u0085Công an", "Bộ Công an\n"):
        with pytest.raises(ImportRejected) as info:
            async with session_factory() as db, db.begin():
                await units_store.import_units(db, [UnitRow("BCA", name, Level.CENTRAL, None, 2)])
        assert info.value.errors[0][0] == 2 and "điều khiển" in info.value.errors[0][1], info.value.errors
    async with session_factory() as db:
        assert (await units_store.get_by_code(db, "BCA")).name == "Bộ Công an"


def test_clean_text_rule() -> None:
    assert values.clean_text("  Hội nghị  ", "title", 20) == "Hội nghị"
    assert values.clean_text("a\r\nb\tc", "reason", 20, multiline=True) == "a\nb\tc"
    for single in ("a\x00b", "a\tb", "a\nb", "a\x1fb", "a\x7fb", "a\x9fb", "a\ud800b"):
        with pytest.raises(ValidationFailed) as info:
            values.clean_text(single, "name", 20)
        assert info.value.code == "text_control_char", repr(single)
    for multi in ("a\x00b", "a\x0bb", "a\x85b", "a\udfffb"):
        with pytest.raises(ValidationFailed):
            values.clean_text(multi, "reason", 20, multiline=True)
    with pytest.raises(ValidationFailed) as info:
        values.clean_text("x" * 21, "name", 20)
    assert info.value.code == "text_too_long"
