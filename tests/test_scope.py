"""Scope: a province account reads or changes nothing outside its province, through any page or
API route, and an anonymous request reaches only login, health, metrics, language and static files.

``ROUTES`` classifies every route of the live application. ``test_every_route_is_classified``
fails when a route exists that the matrix does not know (or the matrix names a route that is
gone), so each new route must come with its anonymous sample and its out-of-province probe.
"""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request
from openpyxl import load_workbook
from sqlalchemy import select
from yarl import URL

from server.auth import SESSION_COOKIE, issue_machine_token
from server.db import transaction
from server.services import directives as directive_service
from server.services import meetings as meeting_service
from server.state import DB, DEPS
from sessions.directives import parse_directive
from sessions.meetings import MeetingState
from sessions.models import (
    Assignment,
    Attachment,
    Conclusion,
    Directive,
    KpiIndicator,
    KpiReport,
    KpiTotal,
    MachineToken,
    Meeting,
    MeetingMinutes,
    Participant,
    ProgressReport,
    Unit,
    UnitClosure,
    User,
)
from sessions.roles import Principal, Role
from sessions.store import auth as auth_store
from sessions.store import kpi as kpi_store
from sessions.store import meetings as meetings_store
from sessions.store import units as units_store
from sessions.store import users as users_store
from sessions.store.directives import StoredFile
from tests.conftest import ACCOUNTS, PASSWORD, Client, LiveServer
from tests.live_util import WsClient

# Everything below is outside Thành phố Hà Nội (01): two other provinces (one with a legacy
# district), their communes, and the ministry itself.
OUTSIDE_UNITS = ("25", "08707", "79", "760", "26734", "BCA")
OUTSIDE_USERS = ("phutho", "vinhyen", "quantri", "chutri")
HANOI_USERS = {"hanoi", "qt_hanoi", "xem_hanoi", "hoankiem"}
HANOI_UNITS = {"01", "00070", "00004"}
# Strings that would show data from outside the province: none may appear in any answer.
LEAKS = ("Phú Thọ", "Vĩnh Yên", "Phúc Yên", "Hồ Chí Minh", "Sài Gòn", "Quận 1", "Bộ Công an",
         *OUTSIDE_USERS, "cau-25", "cau-BCA")
MISSING_ID = 987654

# CSV imports a Hà Nội admin must not be able to run: each touches a unit outside province 01.
CSV_HEADER = "code,name,level,parent_code\n"
OUTSIDE_CSV = {
    "rename another province": "25,Tỉnh Phú Thọ (đổi tên),province,BCA\n",
    "rename a commune of another province": "08707,Phường Vĩnh Yên mới,commune,25\n",
    "add a commune under another province": "99001,Xã Mới,commune,25\n",
    "add a commune under another province's district": "99002,Phường Mới,commune,760\n",
    "rename the ministry": "BCA,Bộ Công an (sửa),central,\n",
    "move an own commune into another province": "00070,Phường Hoàn Kiếm,commune,25\n",
    "detach the own province from the ministry": "01,Thành phố Hà Nội,central,\n",
    "turn an own commune into a new root": "00004,Phường Ba Đình,central,\n",
    "in-scope row together with an out-of-scope row": "99003,Phường Mới,commune,01\n25,Phú Thọ X,province,BCA\n",
    "new chain hung under another province": "99004,Huyện Mới,district,79\n99005,Xã Mới,commune,99004\n",
}


# ---------------------------------------------------------------------------------------------
# Requests, expectations, database snapshots


@dataclass(frozen=True)
class Req:
    """One request. ``path`` may name fixture ids: ``{user_phutho}``, ``{token_25}``."""

    method: str
    path: str
    form: dict[str, str] | None = None
    json: Any = None
    csv: str | None = None  # raw text/csv body (API import)
    upload: str | None = None  # multipart field "file" (import page)
    ws: bool = False  # a websocket endpoint: logged in, the sample opens a real websocket
    header: str = CSV_HEADER  # first line of ``csv`` / ``upload`` (KPI files: KPI_CSV_HEADER)


async def send(http: aiohttp.ClientSession, req: Req, csrf: str = "", ids: dict[str, int] | None = None,
               headers: dict[str, str] | None = None) -> aiohttp.ClientResponse:
    """Send ``req``; with ``csrf`` the token rides the form field or the X-CSRF-Token header."""
    path = req.path.format(**(ids or {}))
    hdrs = dict(headers or {})
    kw: dict[str, Any] = {}
    if req.form is not None:
        kw["data"] = {**req.form, **({"csrf_token": csrf} if csrf else {})}
    elif req.upload is not None:
        form = aiohttp.FormData()
        if csrf:
            form.add_field("csrf_token", csrf)
        form.add_field("file", (req.header + req.upload).encode(), filename="don-vi.csv", content_type="text/csv")
        kw["data"] = form
        if csrf:  # an upload's token never rides inside its body (checked before the body is read)
            hdrs["X-CSRF-Token"] = csrf
    else:
        if req.csv is not None:
            kw["data"] = (req.header + req.csv).encode()
            hdrs["Content-Type"] = "text/csv"
        elif req.json is not None:
            kw["json"] = req.json
        if csrf:
            hdrs["X-CSRF-Token"] = csrf
    return await http.request(req.method, path, headers=hdrs, allow_redirects=False, **kw)


def no_leak(text: str, where: str, allow: tuple[str, ...] = ()) -> None:
    found = [word for word in LEAKS if word in text and word not in allow]
    assert not found, f"{where}: answer shows data from outside the province: {found}"


# A nationwide meeting is chaired by the ministry: its name is part of the meeting, not a leak.
CHAIR_NAME = ("Bộ Công an",)


async def expect(resp: aiohttp.ClientResponse, status: int, code: str | None = None,
                 allow: tuple[str, ...] = ()) -> Any:
    """Check status (and the API error code); no answer may show outside data. Returns the body."""
    where = f"{resp.method} {resp.url.path_qs}"
    if resp.content_type.startswith("application/vnd.openxmlformats"):
        assert resp.status == status, f"{where}: {resp.status}, expected {status}"
        sheet = load_workbook(io.BytesIO(await resp.read())).active
        assert sheet is not None
        rows = [[str(v) for v in row if v is not None] for row in sheet.iter_rows(values_only=True)]
        no_leak(json.dumps(rows, ensure_ascii=False), where, allow)
        return rows
    text = await resp.text()
    assert resp.status == status, f"{where}: {resp.status}, expected {status}: {text[:400]}"
    if resp.content_type == "application/json":
        body = json.loads(text)
        no_leak(json.dumps(body, ensure_ascii=False), where, allow)
        if code is not None:
            assert body["error"]["code"] == code, f"{where}: {body}"
        return body
    assert code is None, f"{where}: expected a JSON error {code}, got {resp.content_type}"
    no_leak(text, where, allow)
    return text


Snapshot = dict[tuple[str, str], Any]


async def snapshot(live: LiveServer) -> Snapshot:
    """Everything a request could change that matters for scope: units, tree, accounts, tokens.
    (Sessions and the audit trail are left out: logging in and being refused write there.)"""
    state: Snapshot = {}
    async with live.app[DB]() as db:
        for code, name, level, parent in (await db.execute(
                select(Unit.code, Unit.name, Unit.level, Unit.parent_id))).all():
            state[("unit", code)] = (name, level, parent)
        state[("closure", "*")] = frozenset(tuple(r) for r in (await db.execute(
            select(UnitClosure.ancestor_id, UnitClosure.descendant_id, UnitClosure.depth))).all())
        for username, *rest in (await db.execute(
                select(User.username, User.unit_id, User.role, User.is_active, User.password_hash))).all():
            state[("user", username)] = tuple(rest)
        for tid, *rest in (await db.execute(select(MachineToken.id, MachineToken.unit_id, MachineToken.scopes,
                                                   MachineToken.expires_at, MachineToken.revoked_at))).all():
            state[("token", str(tid))] = tuple(rest)
        for mid, *rest in (await db.execute(select(Meeting.id, Meeting.title, Meeting.state, Meeting.seq,
                                                   Meeting.floor_unit_id))).all():
            state[("meeting", str(mid))] = tuple(rest)
        for mid, uid, *rest in (await db.execute(select(
                Participant.meeting_id, Participant.unit_id, Participant.status, Participant.reason,
                Participant.online, Participant.hand_at, Participant.muted, Participant.seq))).all():
            state[("seat", f"{mid}:{uid}")] = tuple(rest)
        for uid, ind, period, num, den in (await db.execute(select(
                KpiTotal.unit_id, KpiTotal.indicator, KpiTotal.period, KpiTotal.num, KpiTotal.den))).all():
            state[("kpi", f"{uid}:{ind}:{period}")] = (num, den)
        for mid, version, digest in (await db.execute(select(
                MeetingMinutes.meeting_id, MeetingMinutes.version, MeetingMinutes.content_hash))).all():
            state[("minutes", f"{mid}:{version}")] = digest
        for code, name in (await db.execute(select(KpiIndicator.code, KpiIndicator.name))).all():
            state[("indicator", code)] = name
        for rid, version, superseded in (await db.execute(select(
                KpiReport.report_id, KpiReport.version, KpiReport.superseded))).all():
            state[("kpi_report", f"{rid}:{version}")] = superseded
        for cid, text in (await db.execute(select(Conclusion.id, Conclusion.text))).all():
            state[("conclusion", str(cid))] = text
        for did, text, deadline in (await db.execute(select(Directive.id, Directive.text, Directive.deadline))).all():
            state[("directive", str(did))] = (text, deadline)
        for aid, *rest in (await db.execute(select(Assignment.id, Assignment.unit_id, Assignment.percent,
                                                   Assignment.completed_at))).all():
            state[("assignment", str(aid))] = tuple(rest)
        for rid, aid in (await db.execute(select(ProgressReport.id, ProgressReport.assignment_id))).all():
            state[("report", str(rid))] = aid
    return state


def changed(before: Snapshot, after: Snapshot) -> set[tuple[str, str]]:
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


@dataclass
class World:
    """The seeded server with the objects of ``fixture_ids`` (tokens, meetings), and a Phú Thọ
    operator who stays logged in throughout: nothing done from Hà Nội may end that."""

    live: LiveServer
    ids: dict[str, int]
    outsider: Client


async def issue_token(live: LiveServer, code: str, scopes: frozenset[str] = frozenset({"units:read"}),
                      days: int = 30) -> tuple[int, str]:
    async with transaction(live.app[DB]) as db:
        unit = await units_store.get_by_code(db, code)
        return await issue_machine_token(live.app, db, name=f"cau-{code}", unit_id=unit.id, scopes=scopes,
                                         days=days, created_by_id=None)


async def fixture_ids(live: LiveServer) -> dict[str, int]:
    """Ids for request paths, and the objects they name: ``user_<username>``, ``unit_<code>``,
    ``token_<unit code>`` (tokens bound to 25, BCA, 00070), ``meeting_shared`` (nationwide, live,
    chaired by the ministry) and ``meeting_outside`` (the ministry with Phú Thọ only, scheduled)."""
    async with live.app[DB]() as db:
        ids = {f"user_{name}": uid for name, uid in (await db.execute(select(User.username, User.id))).all()}
        ids |= {f"unit_{code}": uid for code, uid in (await db.execute(select(Unit.code, Unit.id))).all()}
        chair_user = await users_store.get_by_username(db, "chutri")
    for code in ("25", "BCA", "00070"):
        ids[f"token_{code}"] = (await issue_token(live, code))[0]
    assert chair_user is not None
    chair = Principal("user", chair_user.id, chair_user.username, chair_user.unit_id, chair_user.unit_code, Role.CHAIR)
    start = live.clock() + timedelta(days=1)
    ids["meeting_shared"] = await meeting_service.schedule(
        live.app[DEPS], chair, title="Hội nghị toàn quốc", agenda=["Khai mạc"], start=start,
        selectors=meetings_store.parse_selectors([{"unit": "BCA", "levels": ["province", "district", "commune"]}]))
    for state in (MeetingState.REHEARSAL, MeetingState.LIVE):
        await meeting_service.change_state(live.app[DEPS], chair, ids["meeting_shared"], state)
    ids["meeting_outside"] = await meeting_service.schedule(
        live.app[DEPS], chair, title="Hội nghị riêng Phú Thọ", agenda=[], start=start,
        selectors=meetings_store.parse_selectors([{"unit": "25", "levels": ["province", "commune"]}]))
    async with transaction(live.app[DB]) as db:  # a KPI report of Phú Thọ, by its own source system
        await kpi_store.ingest(db, [kpi_report("08707", "ngoai-25")], ids["unit_25"], "cau-25", live.clock())
    ids |= await directive_ids(live, chair, ids)
    # Two concluded meetings, with their minutes: nationwide, and Phú Thọ's own.
    for key, selector in (("meeting_done", {"unit": "BCA", "levels": ["province", "commune"]}),
                          ("meeting_done_outside", {"unit": "25", "levels": ["province", "commune"]})):
        ids[key] = await meeting_service.schedule(live.app[DEPS], chair, title=f"Hội nghị đã kết thúc {key}", agenda=[],
                                              start=start, selectors=meetings_store.parse_selectors([selector]))
        for state in (MeetingState.REHEARSAL, MeetingState.LIVE, MeetingState.CONCLUDED):
            await meeting_service.change_state(live.app[DEPS], chair, ids[key], state)
        ids[key.replace("meeting", "segment")] = await recording_segment(live, ids[key], ids["unit_BCA"])
    ids["missing"] = MISSING_ID
    return ids


async def recording_segment(live: LiveServer, meeting_id: int, bridge_unit_id: int) -> int:
    """A recording of the meeting with one segment (issue #17), its file under the recordings folder."""
    from sessions.store import recordings as recording_store

    path = live.settings.recordings_path / str(meeting_id) / "r1" / "segment-0001.webm"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"webm segment " * 10)
    async with transaction(live.app[DB]) as db:
        rec = await recording_store.recording(db, meeting_id, bridge_unit_id, "r1", live.clock())
        await recording_store.add_segment(db, rec, idx=1, path=f"{meeting_id}/r1/segment-0001.webm", offset=0.0,
                                          duration=1.0, size=130, started_at=live.clock(),
                                          chapters=[{"unit": None, "start": 0.0, "end": 1.0}])
    async with live.app[DB]() as db:
        return (await recording_store.listing(db, meeting_id))[0]["segments"][0]["id"]


async def directive_ids(live: LiveServer, chair: Principal, ids: dict[str, int]) -> dict[str, int]:
    """``conclusion_shared`` (in the nationwide meeting) with ``directive_shared`` to every province
    (``assignment_01``, ``assignment_25``…); ``directive_25``: Phú Thọ's breakdown to its two wards
    (``assignment_08707``, ``assignment_08740``); ``attachment_25``: a file on Phú Thọ's report."""
    async with live.app[DB]() as db:
        phutho_user = await users_store.get_by_username(db, "phutho")
    assert phutho_user is not None
    phutho = Principal("user", phutho_user.id, "phutho", phutho_user.unit_id, "25", Role.BRIDGE_OPERATOR)
    cid, created = await directive_service.record_conclusion(
        live.app[DEPS], chair, ids["meeting_shared"], "Kết luận mẫu", [
        parse_directive({"text": "Số hoá hồ sơ thủ tục hành chính", "deadline": "2099-12-31",
                         "every": {"unit": "BCA", "level": "province"}})])
    out = {"conclusion_shared": cid, "directive_shared": created[0].directive_id}
    out |= {f"assignment_{code}": created[0].assignment_ids[ids[f"unit_{code}"]] for code in ("01", "25", "79")}
    breakdown = await directive_service.break_down(live.app[DEPS], phutho, out["assignment_25"], parse_directive(
        {"text": "Tập huấn cán bộ phường", "deadline": "2099-06-30", "units": ["08707", "08740"]}))
    out["directive_25"] = breakdown.directive_id
    out |= {f"assignment_{code}": breakdown.assignment_ids[ids[f"unit_{code}"]] for code in ("08707", "08740")}
    stored = live.settings.attachment_path / "ab" / "bao-cao-25"
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(b"%PDF-1.4 Phu Tho")
    await directive_service.report(live.app[DEPS], phutho, out["assignment_25"], "Đã triển khai", 40, [
        StoredFile("bao-cao.pdf", "application/pdf", stored.stat().st_size, "0" * 64, "ab/bao-cao-25")])
    async with live.app[DB]() as db:
        out["attachment_25"] = (await db.execute(select(Attachment.id))).scalar_one()
    return out


async def session_client(live: LiveServer, username: str) -> Client:
    """A logged-in browser without the login form (the form is tested in test_auth.py and by the
    accounts under test here): saves an argon2 verification per account."""
    secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    async with transaction(live.app[DB]) as db:
        user = await users_store.get_by_username(db, username)
        assert user is not None
        await auth_store.create_login(db, secret, user.id, csrf, live.clock() + timedelta(hours=1), "127.0.0.1")
    http = live.client()
    http.cookie_jar.update_cookies({SESSION_COOKIE: secret})
    return Client(http, csrf, username)


async def build_world(live: LiveServer) -> World:
    return World(live, await fixture_ids(live), await session_client(live, "phutho"))


def is_admin(c: Client) -> bool:
    return ACCOUNTS[c.username][0] == "admin"


# ---------------------------------------------------------------------------------------------
# Out-of-province probes, one per route. Each returns the snapshot keys it may legitimately
# change (only ever the caller's own account); everything else must stay as it was.

Probe = Callable[[World, Client], Awaitable[set[tuple[str, str]] | None]]


async def outside_public(w: World, c: Client) -> None:
    for path in ("/healthz", "/metrics", "/static/app.css"):
        await expect(await c.get(path), 200)


async def outside_login_page(w: World, c: Client) -> None:
    await expect_redirect(await c.get("/login"), "/")  # already logged in


async def outside_login_submit(w: World, c: Client) -> None:
    # Logged in as Hà Nội, posting Phú Thọ's credentials: refused, and the session stays Hà Nội's.
    await expect(await send(c.http, Req("POST", "/login", form={"username": "phutho", "password": PASSWORD}),
                            c.csrf), 403)
    assert (await expect(await c.get("/api/me"), 200))["name"] == c.username


async def outside_lang(w: World, c: Client) -> None:
    await expect_redirect(await c.get("/lang/en?next=/units/25"), "/units/25")
    await expect_redirect(await c.get("/lang/vi"), "/")
    await expect(await c.get("/units/25"), 403)


async def outside_home(w: World, c: Client) -> None:
    page = await expect(await c.get("/"), 200)
    assert "Thành phố Hà Nội" in page


async def outside_unit_page(w: World, c: Client) -> None:
    for code in OUTSIDE_UNITS:
        page = await expect(await c.get(f"/units/{code}"), 403)
        assert "ngoài phạm vi" in page
    await expect(await c.get("/units/99999"), 404)


async def outside_slides_page(w: World, c: Client) -> None:
    for code in OUTSIDE_UNITS:
        page = await expect(await c.get(f"/slides/{code}"), 403)
        assert "ngoài phạm vi" in page
    await expect(await c.get("/slides/99999"), 404)


async def outside_api_unit(w: World, c: Client) -> None:
    for code in OUTSIDE_UNITS:
        await expect(await c.get(f"/api/units/{code}"), 403, "out_of_scope")
    await expect(await c.get("/api/units/99999"), 404, "unit_not_found")


async def outside_api_subtree(w: World, c: Client) -> None:
    for code in OUTSIDE_UNITS:
        await expect(await c.get(f"/api/units/{code}/subtree"), 403, "out_of_scope")
        await expect(await c.get(f"/api/units/{code}/subtree?level=commune"), 403, "out_of_scope")


async def outside_api_unit_search(w: World, c: Client) -> None:
    for code in OUTSIDE_UNITS:
        await expect(await c.get(f"/api/units/{code}/search?q=Ph"), 403, "out_of_scope")
    found = await expect(await c.get("/api/units/01/search?q=Phường&limit=50"), 200)  # own subtree only
    assert {u["code"] for u in found["units"]} == {"00070", "00004"}


async def outside_api_me(w: World, c: Client) -> None:
    me = await expect(await c.get("/api/me"), 200)
    assert (me["name"], me["unit"]["code"]) == (c.username, "01")


async def outside_api_openapi(w: World, c: Client) -> None:
    doc = await expect(await c.get("/api/openapi.json"), 200)  # the same for everyone: no data in it
    assert "/api/units/{code}" in doc["paths"]


async def outside_password_page(w: World, c: Client) -> None:
    await expect(await c.get("/account/password"), 200)


async def outside_password_submit(w: World, c: Client) -> set[tuple[str, str]]:
    # The form has no target: extra fields naming another account must not redirect the change.
    form = {"current": PASSWORD, "new": PASSWORD, "username": "phutho", "user_id": str(w.ids["user_phutho"])}
    assert "Đã đổi mật khẩu" in await expect(await send(c.http, Req("POST", "/account/password", form=form),
                                                         c.csrf), 200)
    return {("user", c.username)}


async def outside_logout(w: World, c: Client) -> None:
    # Logging out ends that one session only: not this user's other session, not Phú Thọ's.
    second = await session_client(w.live, c.username)
    form = {"user_id": str(w.ids["user_phutho"]), "username": "phutho"}
    await expect_redirect(await send(second.http, Req("POST", "/logout", form=form), second.csrf), "/login?m=out")
    await expect(await second.get("/api/me"), 401, "unauthenticated")
    await expect(await c.get("/api/me"), 200)
    assert (await (await w.outsider.get("/api/me")).json())["name"] == "phutho"


async def outside_users_page(w: World, c: Client) -> None:
    if not is_admin(c):
        await expect(await c.get("/admin/users"), 403)
        return
    page = await expect(await c.get("/admin/users"), 200)  # no outside username (checked by expect)
    assert all(f"<td>{name}</td>" in page for name in HANOI_USERS)


def new_user(code: str) -> dict[str, str]:
    return {"username": f"moi-{code.lower()}", "full_name": "Người mới", "unit_code": code, "role": "viewer",
            "password": PASSWORD}


async def outside_users_create(w: World, c: Client) -> None:
    # Creating an account hashes its password before the scope check (~0.1–0.3 s), so one target
    # per route: Phú Thọ here, the ministry through the API.
    page = await expect(await send(c.http, Req("POST", "/admin/users", form=new_user("25")), c.csrf), 403)
    if is_admin(c):
        assert "ngoài phạm vi" in page


async def outside_users_lock(w: World, c: Client) -> None:
    for name in OUTSIDE_USERS:
        for action in ("lock", "unlock"):
            req = Req("POST", f"/admin/users/{{user_{name}}}/{action}", form={})
            await expect(await send(c.http, req, c.csrf, w.ids), 403)
    await expect(await send(c.http, Req("POST", "/admin/users/{missing}/lock", form={}), c.csrf, w.ids),
                 404 if is_admin(c) else 403)


async def outside_tokens_page(w: World, c: Client) -> None:
    if not is_admin(c):
        await expect(await c.get("/admin/tokens"), 403)
        return
    assert "cau-00070" in await expect(await c.get("/admin/tokens"), 200)


def new_token(code: str) -> dict[str, Any]:
    return {"name": f"moi-{code}", "unit_code": code, "scopes": ["units:read"], "days": 1}


async def outside_tokens_create(w: World, c: Client) -> None:
    for code in OUTSIDE_UNITS:
        form = {**new_token(code), "scopes": "units:read", "days": "1"}
        await expect(await send(c.http, Req("POST", "/admin/tokens", form=form), c.csrf), 403)


async def outside_tokens_revoke(w: World, c: Client) -> None:
    for code in ("25", "BCA"):
        req = Req("POST", f"/admin/tokens/{{token_{code}}}/revoke", form={})
        await expect(await send(c.http, req, c.csrf, w.ids), 403)
    req = Req("POST", "/admin/tokens/{missing}/revoke", form={})
    await expect(await send(c.http, req, c.csrf, w.ids), 404 if is_admin(c) else 403)


async def outside_import_page(w: World, c: Client) -> None:
    await expect(await c.get("/admin/units/import"), 200 if is_admin(c) else 403)


async def outside_import_upload(w: World, c: Client) -> None:
    for label, rows in OUTSIDE_CSV.items():
        resp = await send(c.http, Req("POST", "/admin/units/import", upload=rows), c.csrf)
        assert resp.status == 403, f"import page, {label}: {resp.status}"
        await expect(resp, 403)


async def outside_audit_page(w: World, c: Client) -> None:
    if not is_admin(c):
        await expect(await c.get("/admin/audit"), 403)
        return
    assert f"<td>{c.username}</td><td>login</td>" in await expect(await c.get("/admin/audit"), 200)


async def outside_api_users(w: World, c: Client) -> None:
    if not is_admin(c):
        await expect(await c.get("/api/users"), 403, "forbidden")
        return
    users = (await expect(await c.get("/api/users"), 200))["users"]
    assert {u["username"] for u in users} == HANOI_USERS


async def outside_api_users_create(w: World, c: Client) -> None:
    await expect(await send(c.http, Req("POST", "/api/users", json=new_user("BCA")), c.csrf), 403,
                 "out_of_scope" if is_admin(c) else "forbidden")


async def outside_api_users_lock(w: World, c: Client) -> None:
    code = "out_of_scope" if is_admin(c) else "forbidden"
    for name in OUTSIDE_USERS:
        for action in ("lock", "unlock"):
            req = Req("POST", f"/api/users/{{user_{name}}}/{action}")
            await expect(await send(c.http, req, c.csrf, w.ids), 403, code)
    req = Req("POST", "/api/users/{missing}/lock")
    if is_admin(c):
        await expect(await send(c.http, req, c.csrf, w.ids), 404, "user_not_found")
    else:
        await expect(await send(c.http, req, c.csrf, w.ids), 403, "forbidden")


async def outside_api_tokens(w: World, c: Client) -> None:
    if not is_admin(c):
        await expect(await c.get("/api/tokens"), 403, "forbidden")
        return
    tokens = (await expect(await c.get("/api/tokens"), 200))["tokens"]
    assert [t["unit_code"] for t in tokens] == ["00070"]


async def outside_api_tokens_create(w: World, c: Client) -> None:
    for code in OUTSIDE_UNITS:
        await expect(await send(c.http, Req("POST", "/api/tokens", json=new_token(code)), c.csrf), 403,
                     "out_of_scope" if is_admin(c) else "forbidden")


async def outside_api_tokens_revoke(w: World, c: Client) -> None:
    code = "out_of_scope" if is_admin(c) else "forbidden"
    for unit in ("25", "BCA"):
        await expect(await send(c.http, Req("DELETE", f"/api/tokens/{{token_{unit}}}"), c.csrf, w.ids), 403, code)
    missing = await send(c.http, Req("DELETE", "/api/tokens/{missing}"), c.csrf, w.ids)
    await expect(missing, *((404, "token_not_found") if is_admin(c) else (403, "forbidden")))


async def outside_api_import(w: World, c: Client) -> None:
    for label, rows in OUTSIDE_CSV.items():
        resp = await send(c.http, Req("POST", "/api/units/import", csv=rows), c.csrf)
        assert resp.status == 403, f"API import, {label}: {resp.status} {await resp.text()}"
        await expect(resp, 403, "out_of_scope" if is_admin(c) else "forbidden")


async def outside_api_audit(w: World, c: Client) -> None:
    if not is_admin(c):
        await expect(await c.get("/api/audit"), 403, "forbidden")
        return
    entries = (await expect(await c.get("/api/audit"), 200))["entries"]
    assert entries, "the province admin's own login is in its audit view"
    assert {e["actor"] for e in entries} <= HANOI_USERS


# Meetings. The nationwide meeting is visible to Hà Nội (it takes part) but only the ministry's
# chair runs it; the Phú Thọ meeting does not exist as far as Hà Nội can tell (404, not 403).

def operates_bridge(c: Client) -> bool:
    return ACCOUNTS[c.username][0] == "bridge_operator"


async def outside_meetings_page(w: World, c: Client) -> None:
    page = await expect(await c.get("/meetings"), 200, allow=CHAIR_NAME)
    assert "Hội nghị toàn quốc" in page  # and, checked by expect, not the Phú Thọ meeting


async def outside_meetings_create(w: World, c: Client) -> None:
    form = {"title": "Họp riêng", "agenda": "", "start": "2030-01-01T08:00", "unit_0": "25", "levels_0": "province"}
    page = await expect(await send(c.http, Req("POST", "/meetings", form=form), c.csrf), 403, allow=CHAIR_NAME)
    assert "Chỉ chủ trì" in page


async def outside_meeting_home(w: World, c: Client) -> None:
    await expect(await send(c.http, Req("GET", "/meetings/{meeting_outside}"), ids=w.ids), 404)
    console = "province/01" if operates_bridge(c) else "site"
    await expect_redirect(await send(c.http, Req("GET", "/meetings/{meeting_shared}"), ids=w.ids),
                          f"/meetings/{w.ids['meeting_shared']}/{console}")


async def outside_meeting_page(w: World, c: Client, suffix: str, shared_status: int) -> None:
    await expect(await send(c.http, Req("GET", "/meetings/{meeting_outside}" + suffix), ids=w.ids), 404)
    await expect(await send(c.http, Req("GET", "/meetings/{meeting_missing}" + suffix),
                            ids={**w.ids, "meeting_missing": MISSING_ID}), 404)
    await expect(await send(c.http, Req("GET", "/meetings/{meeting_shared}" + suffix), ids=w.ids), shared_status,
                 allow=CHAIR_NAME)


async def outside_chair_console(w: World, c: Client) -> None:
    await outside_meeting_page(w, c, "/chair", 403)


async def outside_province_console(w: World, c: Client) -> None:
    await expect(await send(c.http, Req("GET", "/meetings/{meeting_outside}/province/25"), ids=w.ids), 404)
    for code in ("25", "79", "BCA"):
        await expect(await send(c.http, Req("GET", f"/meetings/{{meeting_shared}}/province/{code}"), ids=w.ids), 403,
                     allow=CHAIR_NAME)
    await outside_meeting_page(w, c, "/province/01", 200 if operates_bridge(c) else 403)


async def outside_site_page(w: World, c: Client) -> None:
    await outside_meeting_page(w, c, "/site", 200)


async def outside_attendance(w: World, c: Client, ext: str) -> None:
    await outside_meeting_page(w, c, f"/attendance.{ext}", 200 if operates_bridge(c) else 403)
    if operates_bridge(c):  # the export holds Hà Nội's rows only (checked by expect), and all of them
        resp = await send(c.http, Req("GET", f"/meetings/{{meeting_shared}}/attendance.{ext}"), ids=w.ids)
        body = await expect(resp, 200, allow=CHAIR_NAME)
        lines = body.splitlines()[1:] if ext == "csv" else body[2:]
        codes = {(line.split(",")[0] if ext == "csv" else line[0]) for line in lines}
        assert codes == HANOI_UNITS, codes


async def outside_attendance_csv(w: World, c: Client) -> None:
    await outside_attendance(w, c, "csv")


async def outside_attendance_xlsx(w: World, c: Client) -> None:
    await outside_attendance(w, c, "xlsx")


async def outside_api_meetings(w: World, c: Client) -> None:
    meetings = (await expect(await c.get("/api/meetings"), 200, allow=CHAIR_NAME))["meetings"]
    assert sorted(m["id"] for m in meetings) == sorted([w.ids["meeting_shared"], w.ids["meeting_done"]])


def new_meeting(code: str) -> dict[str, Any]:
    return {"title": "Họp riêng", "agenda": [], "start": "2030-01-01T08:00:00+07:00",
            "participants": [{"unit": code, "levels": ["province", "commune"]}]}


async def outside_api_meetings_create(w: World, c: Client) -> None:
    for code in ("25", "01"):  # not even inside Hà Nội: no Hà Nội account chairs meetings
        await expect(await send(c.http, Req("POST", "/api/meetings", json=new_meeting(code)), c.csrf), 403,
                     "chair_only")


async def outside_api_meeting(w: World, c: Client) -> None:
    await expect(await send(c.http, Req("GET", "/api/meetings/{meeting_outside}"), ids=w.ids), 404,
                 "meeting_not_found")
    await expect(await send(c.http, Req("GET", "/api/meetings/{meeting_shared}"), ids=w.ids), 200, allow=CHAIR_NAME)


async def outside_api_media(w: World, c: Client) -> None:
    await expect(await send(c.http, Req("GET", "/api/meetings/{meeting_outside}/media"), ids=w.ids), 404,
                 "meeting_not_found")
    operates = ACCOUNTS[c.username][0] in ("bridge_operator", "site_operator")
    body = await expect(await send(c.http, Req("GET", "/api/meetings/{meeting_shared}/media"), ids=w.ids),
                        200 if operates else 403, None if operates else "forbidden")
    if operates:  # its own unit, never another's
        assert body["unit"] == "01"


async def outside_api_rollcall(w: World, c: Client) -> None:
    await expect(await send(c.http, Req("GET", "/api/meetings/{meeting_outside}/rollcall?unit=01"), ids=w.ids),
                 404, "meeting_not_found")
    for code in ("25", "08707", "BCA"):
        req = Req("GET", f"/api/meetings/{{meeting_shared}}/rollcall?unit={code}")
        await expect(await send(c.http, req, ids=w.ids), 403, "out_of_scope")
    own = await expect(await send(c.http, Req("GET", "/api/meetings/{meeting_shared}/rollcall"), ids=w.ids), 200)
    assert {seat["code"] for seat in own["seats"]} == HANOI_UNITS


async def refused_on_both_meetings(w: World, c: Client, action: str, body: dict[str, Any], status: int,
                                   code: str | tuple[str, ...]) -> None:
    """``action`` on the Phú Thọ meeting: 404; on the nationwide one: ``status`` with ``code``."""
    for name in ("meeting_outside", "meeting_shared"):
        resp = await send(c.http, Req("POST", f"/api/meetings/{{{name}}}/{action}", json=body), c.csrf, w.ids)
        if name == "meeting_outside":
            await expect(resp, 404, "meeting_not_found")
            continue
        error = (await expect(resp, status, allow=CHAIR_NAME))["error"]
        assert error["code"] in ((code,) if isinstance(code, str) else code), f"{action} {body}: {error}"


async def outside_api_state(w: World, c: Client) -> None:
    for target in ("concluded", "cancelled"):
        await refused_on_both_meetings(w, c, "state", {"to": target}, 403, "chair_only")


async def outside_api_mark(w: World, c: Client) -> None:
    for code in ("25", "08707", "26734"):
        await refused_on_both_meetings(w, c, "rollcall", {"unit": code, "status": "absent", "reason": "x"},
                                       403, "forbidden")


async def outside_api_hand(w: World, c: Client) -> None:
    for up in (True, False):
        body = {"up": up, "unit_id": w.ids["unit_08707"]}
        await refused_on_both_meetings(w, c, "hand", body, 403, "forbidden")


async def outside_api_floor(w: World, c: Client) -> None:
    for body in ({"action": "grant", "unit": "25"}, {"action": "grant", "unit_id": w.ids["unit_08707"]},
                 {"action": "next"}, {"action": "revoke"}):
        await refused_on_both_meetings(w, c, "floor", body, 403, "chair_only")


async def outside_api_mute(w: World, c: Client) -> None:
    # Only the chair, or an operator above the site, mutes or unmutes another unit; viewers and
    # accounts that operate no site never (issue #11).
    for muted in (True, False):
        await refused_on_both_meetings(w, c, "mute", {"muted": muted, "unit": "25"}, 403, ("chair_only", "forbidden"))


async def outside_websocket(w: World, c: Client) -> None:
    ws = await WsClient.open(c)
    try:
        shared, outside = w.ids["meeting_shared"], w.ids["meeting_outside"]
        refused = [
            ({"type": "subscribe", "topic": f"meeting:{outside}"}, "meeting_not_found"),
            ({"type": "subscribe", "topic": f"rollcall:{outside}:01"}, "meeting_not_found"),
            ({"type": "subscribe", "topic": f"rollcall:{shared}:25"}, "out_of_scope"),
            ({"type": "subscribe", "topic": f"rollcall:{shared}:BCA"}, "out_of_scope"),
            *(({"type": "subscribe", "topic": f"kpi:{code}"}, "out_of_scope") for code in OUTSIDE_UNITS),
            *(({"type": "subscribe", "topic": f"directives:{code}"}, "out_of_scope") for code in OUTSIDE_UNITS),
            ({"type": "join", "meeting": outside}, "meeting_not_found" if operates_bridge(c) else "forbidden"),
            ({"type": "action", "meeting": outside, "action": "raise_hand"}, "meeting_not_found"),
            ({"type": "action", "meeting": shared, "action": "grant", "unit": "25"}, "chair_only"),
            ({"type": "action", "meeting": shared, "action": "state", "to": "concluded"}, "chair_only"),
            ({"type": "action", "meeting": shared, "action": "mark", "unit": "08707", "status": "absent"},
             "forbidden"),
            ({"type": "action", "meeting": shared, "action": "mute", "unit": "25"},
             "chair_only" if operates_bridge(c) else "forbidden"),
            ({"type": "action", "meeting": shared, "action": "lower_hand", "unit_id": w.ids["unit_25"]}, "forbidden"),
        ]
        for msg, code in refused:
            answer = await ws.request(msg)
            assert (answer["type"], answer.get("code")) == ("error", code), f"websocket {msg}: {answer}"
        ok = await ws.request({"type": "subscribe", "topic": f"meeting:{shared}"})
        assert ok["type"] == "result"
        for message in ws.messages:
            no_leak(json.dumps(message, ensure_ascii=False), f"websocket message {message.get('type')}",
                    CHAIR_NAME)
    finally:
        await ws.close()


# KPI: Hà Nội's operators report for Hà Nội only (a batch naming any outside unit is refused whole);
# the viewer may not report at all. Reading another province's figures is refused for everyone.

def kpi_report(code: str, rid: str = "") -> dict[str, Any]:
    return {"report_id": rid or f"mau-{code}", "unit": code, "indicator": "DVC_TY_LE_DUNG_HAN", "period": "2022-06",
            "value": 9, "denominator": 10}


async def outside_api_kpi_reports(w: World, c: Client) -> None:
    code = "forbidden" if ACCOUNTS[c.username][0] == "viewer" else "out_of_scope"
    for unit in OUTSIDE_UNITS:
        for batch in ([kpi_report(unit)], [kpi_report("00070", "trong-01"), kpi_report(unit)]):
            await expect(await send(c.http, Req("POST", "/api/kpi/reports", json={"reports": batch}), c.csrf), 403,
                         code)
    # A report id of another province's report, at a Hà Nội unit, names Hà Nội's own report (ids are
    # per unit): refused here only for the outside item, and nothing is said of Phú Thọ's report.
    body = await expect(await send(c.http, Req("POST", "/api/kpi/reports", json={"reports": [
        kpi_report("00070", "ngoai-25"), kpi_report("25")]}), c.csrf), 403, code)
    if code != "forbidden":
        assert [(e["index"], e["code"]) for e in body["error"]["errors"]] == [(1, "out_of_scope")], body


async def outside_api_kpi_unit(w: World, c: Client) -> None:
    for code in OUTSIDE_UNITS:
        await expect(await c.get(f"/api/kpi/{code}?period=2022-06"), 403, "out_of_scope")
    await expect(await c.get("/api/kpi/99999"), 404, "unit_not_found")
    own = await expect(await c.get("/api/kpi/01?period=2022-06"), 200)
    assert own["unit"]["code"] == "01"


KPI_CSV_HEADER = "unit_code,indicator,period,value,denominator,report_id\n"


def kpi_csv(code: str, rid: str = "") -> str:
    r = kpi_report(code, rid)
    return f"{code},{r['indicator']},{r['period']},{r['value']},{r['denominator']},{r['report_id']}\n"


async def outside_kpi_csv(c: Client, path: str, upload: bool) -> None:
    """The CSV intake (page or API) refuses exactly what the JSON intake refuses."""
    viewer = ACCOUNTS[c.username][0] == "viewer"
    code = None if upload else "forbidden" if viewer else "out_of_scope"

    def req(rows: str) -> Req:
        return Req("POST", path, upload=rows, header=KPI_CSV_HEADER) if upload else \
            Req("POST", path, csv=rows, header=KPI_CSV_HEADER)

    for unit in OUTSIDE_UNITS:
        for rows in (kpi_csv(unit), kpi_csv("00070", "trong-01") + kpi_csv(unit)):
            body = await expect(await send(c.http, req(rows), c.csrf), 403, code)
            if upload and not viewer:
                assert "nằm ngoài phạm vi" in body
    # Another province's report id at a Hà Nội unit: Hà Nội's own report (ids are per unit), not a
    # conflict that would reveal Phú Thọ's; refused here only for the outside line.
    body = await expect(await send(c.http, req(kpi_csv("00070", "ngoai-25") + kpi_csv("25")), c.csrf), 403, code)
    if upload:
        assert "ngoai-25" not in body and "đã dùng" not in body
    elif not viewer:
        assert [(e["line"], e["code"]) for e in body["error"]["errors"]] == [(3, "out_of_scope")], body


async def outside_kpi_upload_page(w: World, c: Client) -> None:
    page = await expect(await c.get("/kpi/upload"), 403 if ACCOUNTS[c.username][0] == "viewer" else 200)
    if ACCOUNTS[c.username][0] != "viewer":
        assert 'name="csrf_token"' in page


async def outside_kpi_upload(w: World, c: Client) -> None:
    await outside_kpi_csv(c, "/kpi/upload", upload=True)


async def outside_api_kpi_csv(w: World, c: Client) -> None:
    await outside_kpi_csv(c, "/api/kpi/reports.csv", upload=False)


# Minutes. The nationwide meeting's minutes are the official notice sent to every participant: the
# names of the other sites in its attendance list are part of it, as the ministry's name is, and the
# chair's (the test accounts' full name is their username).
MINUTES_NAMES = ("Phú Thọ", "Vĩnh Yên", "Phúc Yên", "Hồ Chí Minh", "Sài Gòn", "Quận 1", "Bộ Công an", "chutri")
CORRECTION = {"reason": "Ghi số văn bản", "number": "12", "title": "Hội nghị đã kết thúc meeting_done",
              "chair_name": "Bộ Công an", "chair_title": "Chủ trì hội nghị", "recipients": "Các đơn vị dự hội nghị"}


async def outside_minutes_page(w: World, c: Client) -> None:
    await expect(await send(c.http, Req("GET", "/meetings/{meeting_done_outside}/minutes"), ids=w.ids), 404)
    page = await expect(await send(c.http, Req("GET", "/meetings/{meeting_done}/minutes"), ids=w.ids), 200,
                        allow=MINUTES_NAMES)
    assert "correction-form" not in page


async def outside_minutes_file(w: World, c: Client, kind: str) -> None:
    await expect(await send(c.http, Req("GET", f"/meetings/{{meeting_done_outside}}/minutes.{kind}"), ids=w.ids),
                 404)
    resp = await send(c.http, Req("GET", f"/meetings/{{meeting_done}}/minutes.{kind}"), ids=w.ids)
    assert resp.status == 200 and resp.headers["Content-Disposition"].endswith(f'.{kind}"'), resp.status


async def outside_minutes_pdf(w: World, c: Client) -> None:
    await outside_minutes_file(w, c, "pdf")


async def outside_minutes_docx(w: World, c: Client) -> None:
    await outside_minutes_file(w, c, "docx")


async def outside_minutes_correct(w: World, c: Client) -> None:
    req = Req("POST", "/meetings/{meeting_done_outside}/minutes/corrections", form=CORRECTION)
    await expect(await send(c.http, req, c.csrf, w.ids), 404)
    req = Req("POST", "/meetings/{meeting_done}/minutes/corrections", form=CORRECTION)
    await expect(await send(c.http, req, c.csrf, w.ids), 403, allow=MINUTES_NAMES)


async def outside_api_minutes(w: World, c: Client) -> None:
    await expect(await send(c.http, Req("GET", "/api/meetings/{meeting_done_outside}/minutes"), ids=w.ids), 404,
                 "meeting_not_found")
    await expect(await send(c.http, Req("GET", "/api/meetings/{meeting_done}/minutes"), ids=w.ids), 200,
                 allow=MINUTES_NAMES)


async def outside_api_minutes_correct(w: World, c: Client) -> None:
    body = {"reason": "Sửa", "changes": {"number": "99"}}
    await expect(await send(c.http, Req("POST", "/api/meetings/{meeting_done_outside}/minutes/corrections",
                                        json=body), c.csrf, w.ids), 404, "meeting_not_found")
    await expect(await send(c.http, Req("POST", "/api/meetings/{meeting_done}/minutes/corrections", json=body),
                            c.csrf, w.ids), 403, "chair_only")


PRESIDING = {"title": "Bộ trưởng", "name": "Tô Lâm", "signer_authority": "", "signer_title": "", "signer_name": ""}


async def outside_minutes_present(w: World, c: Client) -> None:
    for fmt in ("csv", "xlsx"):
        await expect(await send(c.http, Req("GET", f"/meetings/{{meeting_done_outside}}/minutes/present.{fmt}"),
                                ids=w.ids), 404)
        resp = await send(c.http, Req("GET", f"/meetings/{{meeting_done}}/minutes/present.{fmt}"), ids=w.ids)
        await expect(resp, 200, allow=MINUTES_NAMES)


async def outside_recordings_page(w: World, c: Client) -> None:
    await expect(await send(c.http, Req("GET", "/meetings/{meeting_done_outside}/recordings"), ids=w.ids), 404)
    await expect(await send(c.http, Req("GET", "/meetings/{meeting_done}/recordings"), ids=w.ids), 200,
                 allow=MINUTES_NAMES)


async def outside_api_recordings(w: World, c: Client) -> None:
    await expect(await send(c.http, Req("GET", "/api/meetings/{meeting_done_outside}/recordings"), ids=w.ids), 404,
                 "meeting_not_found")
    await expect(await send(c.http, Req("GET", "/api/meetings/{meeting_done}/recordings"), ids=w.ids), 200,
                 allow=MINUTES_NAMES)


async def outside_recording_file(w: World, c: Client) -> None:
    await expect(await send(c.http, Req("GET", "/recordings/{segment_done_outside}"), ids=w.ids), 404)
    resp = await send(c.http, Req("GET", "/recordings/{segment_done}"), ids=w.ids)
    assert resp.status == 200 and resp.headers["Content-Type"] == "video/webm", resp.status


async def outside_api_recording_toggle(w: World, c: Client) -> None:
    req = Req("POST", "/api/meetings/{meeting_outside}/recording", json={"on": False})
    await expect(await send(c.http, req, c.csrf, w.ids), 404, "meeting_not_found")
    req = Req("POST", "/api/meetings/{meeting_shared}/recording", json={"on": False})
    await expect(await send(c.http, req, c.csrf, w.ids), 403, "chair_only")


async def outside_api_recording_bridges(w: World, c: Client) -> None:
    await expect(await send(c.http, Req("GET", "/api/meetings/{meeting_outside}/recording"), ids=w.ids), 404,
                 "meeting_not_found")
    await expect(await send(c.http, Req("GET", "/api/meetings/{meeting_shared}/recording"), ids=w.ids), 403,
                 "chair_only")


async def outside_minutes_presiding(w: World, c: Client) -> None:
    req = Req("POST", "/meetings/{meeting_outside}/minutes/presiding", form=PRESIDING)
    await expect(await send(c.http, req, c.csrf, w.ids), 404)
    req = Req("POST", "/meetings/{meeting_shared}/minutes/presiding", form=PRESIDING)
    await expect(await send(c.http, req, c.csrf, w.ids), 403, allow=CHAIR_NAME)


async def outside_api_presiding(w: World, c: Client) -> None:
    await expect(await send(c.http, Req("PUT", "/api/meetings/{meeting_outside}/presiding", json=PRESIDING),
                            c.csrf, w.ids), 404, "meeting_not_found")
    await expect(await send(c.http, Req("PUT", "/api/meetings/{meeting_shared}/presiding", json=PRESIDING),
                            c.csrf, w.ids), 403, "chair_only")


def indicator_form(code: str) -> dict[str, str]:
    return {"code": code, "name": f"Chỉ tiêu {code}", "kind": "ratio", "unit": "%", "direction": "higher",
            "target": "90", "green_at": "90", "amber_at": "70", "period": "month", "level_thresholds": ""}


INDICATOR_CSV_HEADER = "code,name,kind,unit,target\n"


async def outside_indicators_page(w: World, c: Client) -> None:
    """The catalog is national: a province's admin may not change it (nor see the admin page)."""
    await expect(await c.get("/admin/indicators"), 403)


async def outside_indicators_add(w: World, c: Client) -> None:
    await expect(await send(c.http, Req("POST", "/admin/indicators", form=indicator_form("HN_THEM")), c.csrf), 403)


async def outside_indicators_upload(w: World, c: Client) -> None:
    req = Req("POST", "/admin/indicators/upload", upload="HN_TEP,Chỉ tiêu tệp,count,hồ sơ,\n",
              header=INDICATOR_CSV_HEADER)
    await expect(await send(c.http, req, c.csrf), 403)
# Directives. The nationwide directive reaches Hà Nội (its own assignment only); Phú Thọ's part,
# its breakdown, reports and files do not exist as far as Hà Nội can tell (404), and no Hà Nội
# account records conclusions (chair_only) or gives work to units outside its subtree.

def new_directive(*codes: str) -> dict[str, Any]:
    return {"text": "Giao việc mẫu", "deadline": "2099-12-31", "units": list(codes)}


def acts(c: Client) -> bool:
    return ACCOUNTS[c.username][0] in ("bridge_operator", "site_operator", "chair")


async def outside_api_conclude(w: World, c: Client) -> None:
    body = {"text": "Kết luận riêng", "directives": [new_directive("25")]}
    await expect(await send(c.http, Req("POST", "/api/meetings/{meeting_outside}/conclusions", json=body), c.csrf,
                            w.ids), 404, "meeting_not_found")
    for directive in (new_directive("25"), new_directive("01"), new_directive("00070")):
        req = Req("POST", "/api/meetings/{meeting_shared}/conclusions", json={**body, "directives": [directive]})
        await expect(await send(c.http, req, c.csrf, w.ids), 403, "chair_only", allow=CHAIR_NAME)


async def outside_api_conclusions(w: World, c: Client) -> None:
    await expect(await send(c.http, Req("GET", "/api/meetings/{meeting_outside}/conclusions"), ids=w.ids), 404,
                 "meeting_not_found")
    body = await expect(await send(c.http, Req("GET", "/api/meetings/{meeting_shared}/conclusions"), ids=w.ids),
                        200, allow=CHAIR_NAME)
    codes = {a["unit"]["code"] for k in body["conclusions"] for d in k["directives"] for a in d["assignments"]}
    assert codes == {"01"}, codes


async def outside_api_add_directive(w: World, c: Client) -> None:
    for codes in (("25",), ("01",)):
        req = Req("POST", "/api/conclusions/{conclusion_shared}/directives", json=new_directive(*codes))
        await expect(await send(c.http, req, c.csrf, w.ids), 403, "chair_only", allow=CHAIR_NAME)
    await expect(await send(c.http, Req("POST", "/api/conclusions/{missing}/directives", json=new_directive("01")),
                            c.csrf, w.ids), 404, "conclusion_not_found")


async def outside_api_breakdown(w: World, c: Client) -> None:
    for name in ("assignment_25", "assignment_08707", "assignment_79", "missing"):
        req = Req("POST", f"/api/assignments/{{{name}}}/breakdown", json=new_directive("00070"))
        await expect(await send(c.http, req, c.csrf, w.ids), 404, "assignment_not_found")
    # The own assignment, broken down to units outside the own subtree (or to itself): refused.
    for codes in (("25",), ("08707",), ("00070", "26734"), ("01",), ("BCA",)):
        req = Req("POST", "/api/assignments/{assignment_01}/breakdown", json=new_directive(*codes))
        await expect(await send(c.http, req, c.csrf, w.ids), 403,
                     "breakdown_outside_subtree" if acts(c) else "forbidden")
    every = {**new_directive(), "every": {"unit": "25", "level": "commune"}}
    await expect(await send(c.http, Req("POST", "/api/assignments/{assignment_01}/breakdown", json=every), c.csrf,
                            w.ids), 403, "breakdown_outside_subtree" if acts(c) else "forbidden")


async def outside_api_report(w: World, c: Client) -> None:
    for name in ("assignment_25", "assignment_08707", "missing"):
        req = Req("POST", f"/api/assignments/{{{name}}}/reports", json={"text": "Xong", "percent": 100})
        await expect(await send(c.http, req, c.csrf, w.ids), 404, "assignment_not_found")
    form = aiohttp.FormData()
    form.add_field("text", "Xong")
    form.add_field("percent", "100")
    form.add_field("files", b"%PDF-1.4", filename="bao-cao.pdf", content_type="application/pdf")
    resp = await c.http.post(f"/api/assignments/{w.ids['assignment_25']}/reports", data=form,
                             headers={"X-CSRF-Token": c.csrf})
    await expect(resp, 404, "assignment_not_found")
    stored = [p for p in w.live.settings.attachment_path.rglob("*") if p.is_file()]
    assert len(stored) == 1, f"a refused report left files behind: {stored}"


async def outside_api_done(w: World, c: Client) -> None:
    for name in ("assignment_25", "assignment_08740", "assignment_79", "missing"):
        await expect(await send(c.http, Req("POST", f"/api/assignments/{{{name}}}/done"), c.csrf, w.ids), 404,
                     "assignment_not_found")


async def outside_api_assignment(w: World, c: Client) -> None:
    for name in ("assignment_25", "assignment_08707", "assignment_79", "missing"):
        await expect(await send(c.http, Req("GET", f"/api/assignments/{{{name}}}"), ids=w.ids), 404,
                     "assignment_not_found")
    own = await expect(await send(c.http, Req("GET", "/api/assignments/{assignment_01}"), ids=w.ids), 200,
                       allow=CHAIR_NAME)
    assert own["assignment"]["unit"]["code"] == "01"


async def outside_api_attachment(w: World, c: Client) -> None:
    for name in ("attachment_25", "missing"):
        await expect(await send(c.http, Req("GET", f"/api/attachments/{{{name}}}"), ids=w.ids), 404,
                     "attachment_not_found")


async def outside_api_directives(w: World, c: Client) -> None:
    for code in OUTSIDE_UNITS:
        await expect(await c.get(f"/api/directives?unit={code}"), 403, "out_of_scope")
    own = await expect(await c.get("/api/directives"), 200, allow=CHAIR_NAME)
    assert [a["unit"]["code"] for a in own["assignments"]] == ["01"]


async def outside_api_dashboard(w: World, c: Client) -> None:
    for code in OUTSIDE_UNITS:
        await expect(await c.get(f"/api/directives/dashboard?unit={code}"), 403, "out_of_scope")
    await expect(await send(c.http, Req("GET", "/api/directives/dashboard?meeting={meeting_outside}"), ids=w.ids),
                 404, "meeting_not_found")
    own = await expect(await c.get("/api/directives/dashboard"), 200)
    assert [r["unit"]["code"] for r in own["rows"]] == ["01"] and own["total"] == 1


async def outside_api_directive(w: World, c: Client) -> None:
    for name in ("directive_25", "missing"):
        await expect(await send(c.http, Req("GET", f"/api/directives/{{{name}}}"), ids=w.ids), 404,
                     "directive_not_found")
    shared = await expect(await send(c.http, Req("GET", "/api/directives/{directive_shared}"), ids=w.ids), 200,
                          allow=CHAIR_NAME)
    assert [a["unit"]["code"] for a in shared["directive"]["assignments"]] == ["01"]


async def outside_directives_page(w: World, c: Client) -> None:
    for code in OUTSIDE_UNITS:
        await expect(await c.get(f"/directives?unit={code}"), 403)
    page = await expect(await c.get("/directives"), 200, allow=CHAIR_NAME)
    assert "Số hoá hồ sơ thủ tục hành chính" in page


async def outside_dashboard_page(w: World, c: Client) -> None:
    for code in OUTSIDE_UNITS:
        await expect(await c.get(f"/directives/dashboard?unit={code}"), 403)
    page = await expect(await c.get("/directives/dashboard"), 200)
    assert 'data-unit="01"' in page


async def outside_directive_page(w: World, c: Client) -> None:
    for name in ("directive_25", "missing"):
        await expect(await send(c.http, Req("GET", f"/directives/{{{name}}}"), ids=w.ids), 404)
    page = await expect(await send(c.http, Req("GET", "/directives/{directive_shared}"), ids=w.ids), 200,
                        allow=CHAIR_NAME)
    assert f'data-assignment="{w.ids["assignment_01"]}"' in page


async def outside_assignment_page(w: World, c: Client) -> None:
    for name in ("assignment_25", "assignment_08707", "assignment_79", "missing"):
        await expect(await send(c.http, Req("GET", f"/assignments/{{{name}}}"), ids=w.ids), 404)
    await expect(await send(c.http, Req("GET", "/assignments/{assignment_01}"), ids=w.ids), 200, allow=CHAIR_NAME)


async def outside_directive_trees(w: World, c: Client) -> None:
    for code in OUTSIDE_UNITS:
        await expect(await c.get(f"/directives/tree?unit={code}"), 403)
    page = await expect(await c.get("/directives/tree?unit=01"), 200, allow=CHAIR_NAME)
    assert f'data-assignment="{w.ids["assignment_01"]}"' in page


async def outside_followup_export(w: World, c: Client) -> None:
    for code in OUTSIDE_UNITS:
        await expect(await c.get(f"/directives/followup.xlsx?unit={code}"), 403)
    rows = await expect(await c.get("/directives/followup.xlsx"), 200, allow=CHAIR_NAME)
    assert any(row[:2] == ["1", "Thành phố Hà Nội"] for row in rows)


async def expect_redirect(resp: aiohttp.ClientResponse, location: str) -> aiohttp.ClientResponse:
    assert resp.status == 303, f"{resp.method} {resp.url.path_qs}: {resp.status}, expected 303"
    assert resp.headers["Location"] == location, resp.headers["Location"]
    return resp


# ---------------------------------------------------------------------------------------------
# The route matrix


@dataclass(frozen=True)
class Route:
    """``access``: public (anyone), page (HTML; anonymous → 303 /login) or api (anonymous → 401).
    ``sample``: a request account ``by`` may make (answered ``ok``); anonymous, it must fail.
    ``outside``: what a Hà Nội account gets when it aims at anything outside province 01."""

    access: str
    sample: Req
    ok: int
    outside: Probe
    by: str = "quantri"


def _user_json(name: str, code: str) -> dict[str, str]:
    return {**new_user(code), "username": name}


ROUTES: dict[tuple[str, str], Route] = {
    # Public
    ("GET", "/healthz"): Route("public", Req("GET", "/healthz"), 200, outside_public),
    ("GET", "/metrics"): Route("public", Req("GET", "/metrics"), 200, outside_public),
    ("GET", "/static"): Route("public", Req("GET", "/static/app.css"), 200, outside_public),
    ("GET", "/login"): Route("public", Req("GET", "/login"), 200, outside_login_page),
    # Without the login form's double-submit cookie the form is refused (see test_auth.py).
    ("POST", "/login"): Route("public", Req("POST", "/login", form={"username": "quantri", "password": PASSWORD}),
                              403, outside_login_submit),
    ("GET", "/lang/{lang}"): Route("public", Req("GET", "/lang/en"), 303, outside_lang),
    # Pages
    ("GET", "/"): Route("page", Req("GET", "/"), 200, outside_home),
    ("GET", "/units/{code}"): Route("page", Req("GET", "/units/25"), 200, outside_unit_page),
    ("GET", "/slides/{unit_code}"): Route("page", Req("GET", "/slides/25"), 200, outside_slides_page),
    ("GET", "/account/password"): Route("page", Req("GET", "/account/password"), 200, outside_password_page),
    ("POST", "/account/password"): Route(
        "page", Req("POST", "/account/password", form={"current": PASSWORD, "new": PASSWORD}), 200,
        outside_password_submit),
    ("POST", "/logout"): Route("page", Req("POST", "/logout", form={}), 303, outside_logout),
    ("GET", "/admin/users"): Route("page", Req("GET", "/admin/users"), 200, outside_users_page),
    ("POST", "/admin/users"): Route("page", Req("POST", "/admin/users", form=new_user("25")), 200,
                                    outside_users_create),
    ("POST", "/admin/users/{user_id}/{action}"): Route(
        "page", Req("POST", "/admin/users/{user_phutho}/lock", form={}), 303, outside_users_lock),
    ("GET", "/admin/tokens"): Route("page", Req("GET", "/admin/tokens"), 200, outside_tokens_page),
    ("POST", "/admin/tokens"): Route(
        "page", Req("POST", "/admin/tokens", form={"name": "mau", "unit_code": "25", "scopes": "units:read",
                                                   "days": "1"}), 200, outside_tokens_create),
    ("POST", "/admin/tokens/{token_id}/revoke"): Route(
        "page", Req("POST", "/admin/tokens/{token_25}/revoke", form={}), 303, outside_tokens_revoke),
    ("GET", "/admin/units/import"): Route("page", Req("GET", "/admin/units/import"), 200, outside_import_page),
    ("POST", "/admin/units/import"): Route(
        "page", Req("POST", "/admin/units/import", upload="99101,Phường Mẫu,commune,25\n"), 200,
        outside_import_upload),
    ("GET", "/admin/audit"): Route("page", Req("GET", "/admin/audit"), 200, outside_audit_page),
    ("GET", "/admin/indicators"): Route("page", Req("GET", "/admin/indicators"), 200, outside_indicators_page),
    ("POST", "/admin/indicators"): Route("page", Req("POST", "/admin/indicators", form=indicator_form("MAU_FORM")),
                                         200, outside_indicators_add),
    ("POST", "/admin/indicators/upload"): Route(
        "page", Req("POST", "/admin/indicators/upload", upload="MAU_TEP,Chỉ tiêu mẫu,count,hồ sơ,\n",
                    header=INDICATOR_CSV_HEADER), 200, outside_indicators_upload),
    # JSON API
    ("GET", "/api/me"): Route("api", Req("GET", "/api/me"), 200, outside_api_me),
    ("GET", "/api/openapi.json"): Route("api", Req("GET", "/api/openapi.json"), 200, outside_api_openapi),
    ("GET", "/api/units/{code}"): Route("api", Req("GET", "/api/units/25"), 200, outside_api_unit),
    ("GET", "/api/units/{code}/subtree"): Route("api", Req("GET", "/api/units/25/subtree"), 200,
                                                outside_api_subtree),
    ("GET", "/api/units/{code}/search"): Route("api", Req("GET", "/api/units/25/search?q=Vinh"), 200,
                                               outside_api_unit_search),
    ("GET", "/api/users"): Route("api", Req("GET", "/api/users"), 200, outside_api_users),
    ("POST", "/api/users"): Route("api", Req("POST", "/api/users", json=_user_json("mau-api", "25")), 201,
                                  outside_api_users_create),
    ("POST", "/api/users/{user_id}/{action}"): Route(
        "api", Req("POST", "/api/users/{user_hoankiem}/lock"), 200, outside_api_users_lock),
    ("GET", "/api/tokens"): Route("api", Req("GET", "/api/tokens"), 200, outside_api_tokens),
    ("POST", "/api/tokens"): Route("api", Req("POST", "/api/tokens", json=new_token("25")), 201,
                                   outside_api_tokens_create),
    ("DELETE", "/api/tokens/{token_id}"): Route("api", Req("DELETE", "/api/tokens/{token_BCA}"), 200,
                                                outside_api_tokens_revoke),
    ("POST", "/api/units/import"): Route("api", Req("POST", "/api/units/import", csv="99102,Phường Mẫu,commune,25\n"),
                                         200, outside_api_import),
    ("GET", "/api/audit"): Route("api", Req("GET", "/api/audit"), 200, outside_api_audit),
    ("POST", "/api/kpi/reports"): Route("api", Req("POST", "/api/kpi/reports", json={"reports": [kpi_report("25")]}),
                                        200, outside_api_kpi_reports),
    ("POST", "/api/kpi/reports.csv"): Route(
        "api", Req("POST", "/api/kpi/reports.csv", csv=kpi_csv("25", "mau-csv-25"), header=KPI_CSV_HEADER), 200,
        outside_api_kpi_csv),
    ("GET", "/kpi/upload"): Route("page", Req("GET", "/kpi/upload"), 200, outside_kpi_upload_page),
    ("POST", "/kpi/upload"): Route(
        "page", Req("POST", "/kpi/upload", upload=kpi_csv("08707", "mau-tai-08707"), header=KPI_CSV_HEADER), 200,
        outside_kpi_upload, "vinhyen"),
    ("GET", "/api/kpi/{unit_code}"): Route("api", Req("GET", "/api/kpi/25?period=2022-06"), 200,
                                           outside_api_kpi_unit),
    # Meetings (pages, JSON API, websocket): the samples are the ministry chair's, or a site's.
    ("GET", "/meetings"): Route("page", Req("GET", "/meetings"), 200, outside_meetings_page, "chutri"),
    ("POST", "/meetings"): Route(
        "page", Req("POST", "/meetings", form={"title": "Họp mẫu", "agenda": "Khai mạc", "start": "2030-01-01T08:00",
                                               "unit_0": "25", "levels_0": "province"}), 303,
        outside_meetings_create, "chutri"),
    ("GET", "/meetings/{meeting_id}"): Route("page", Req("GET", "/meetings/{meeting_shared}"), 303,
                                             outside_meeting_home, "chutri"),
    ("GET", "/meetings/{meeting_id}/chair"): Route("page", Req("GET", "/meetings/{meeting_shared}/chair"), 200,
                                                   outside_chair_console, "chutri"),
    ("GET", "/meetings/{meeting_id}/province/{code}"): Route(
        "page", Req("GET", "/meetings/{meeting_shared}/province/25"), 200, outside_province_console, "chutri"),
    ("GET", "/meetings/{meeting_id}/site"): Route("page", Req("GET", "/meetings/{meeting_shared}/site"), 200,
                                                  outside_site_page, "vinhyen"),
    ("GET", "/meetings/{meeting_id}/attendance.csv"): Route(
        "page", Req("GET", "/meetings/{meeting_shared}/attendance.csv"), 200, outside_attendance_csv, "chutri"),
    ("GET", "/meetings/{meeting_id}/attendance.xlsx"): Route(
        "page", Req("GET", "/meetings/{meeting_shared}/attendance.xlsx"), 200, outside_attendance_xlsx, "chutri"),
    ("GET", "/ws"): Route("page", Req("GET", "/ws", ws=True), 101, outside_websocket, "vinhyen"),
    ("GET", "/api/meetings"): Route("api", Req("GET", "/api/meetings"), 200, outside_api_meetings, "chutri"),
    ("POST", "/api/meetings"): Route("api", Req("POST", "/api/meetings", json=new_meeting("25")), 201,
                                     outside_api_meetings_create, "chutri"),
    ("GET", "/api/meetings/{meeting_id}"): Route("api", Req("GET", "/api/meetings/{meeting_shared}"), 200,
                                                 outside_api_meeting, "vinhyen"),
    ("GET", "/meetings/{meeting_id}/minutes"): Route(
        "page", Req("GET", "/meetings/{meeting_done}/minutes"), 200, outside_minutes_page, "chutri"),
    ("GET", "/meetings/{meeting_id}/minutes.pdf"): Route(
        "page", Req("GET", "/meetings/{meeting_done}/minutes.pdf"), 200, outside_minutes_pdf, "chutri"),
    ("GET", "/meetings/{meeting_id}/minutes.docx"): Route(
        "page", Req("GET", "/meetings/{meeting_done}/minutes.docx"), 200, outside_minutes_docx, "chutri"),
    ("POST", "/meetings/{meeting_id}/minutes/corrections"): Route(
        "page", Req("POST", "/meetings/{meeting_done}/minutes/corrections", form=CORRECTION), 303,
        outside_minutes_correct, "chutri"),
    ("GET", "/meetings/{meeting_id}/recordings"): Route(
        "page", Req("GET", "/meetings/{meeting_done}/recordings"), 200, outside_recordings_page, "chutri"),
    ("GET", "/api/meetings/{meeting_id}/recordings"): Route(
        "api", Req("GET", "/api/meetings/{meeting_done}/recordings"), 200, outside_api_recordings, "chutri"),
    ("GET", "/recordings/{segment_id}"): Route(
        "page", Req("GET", "/recordings/{segment_done}"), 200, outside_recording_file, "chutri"),
    ("POST", "/api/meetings/{meeting_id}/recording"): Route(
        "api", Req("POST", "/api/meetings/{meeting_shared}/recording", json={"on": True}), 200,
        outside_api_recording_toggle, "chutri"),
    ("GET", "/api/meetings/{meeting_id}/recording"): Route(
        "api", Req("GET", "/api/meetings/{meeting_shared}/recording"), 200, outside_api_recording_bridges, "chutri"),
    ("GET", "/api/meetings/{meeting_id}/minutes"): Route(
        "api", Req("GET", "/api/meetings/{meeting_done}/minutes"), 200, outside_api_minutes, "chutri"),
    ("GET", "/meetings/{meeting_id}/minutes/present.{fmt}"): Route(
        "page", Req("GET", "/meetings/{meeting_done}/minutes/present.csv"), 200, outside_minutes_present, "chutri"),
    ("POST", "/meetings/{meeting_id}/minutes/presiding"): Route(
        "page", Req("POST", "/meetings/{meeting_shared}/minutes/presiding", form=PRESIDING), 303,
        outside_minutes_presiding, "chutri"),
    ("PUT", "/api/meetings/{meeting_id}/presiding"): Route(
        "api", Req("PUT", "/api/meetings/{meeting_shared}/presiding", json=PRESIDING), 200, outside_api_presiding,
        "chutri"),
    ("POST", "/api/meetings/{meeting_id}/minutes/corrections"): Route(
        "api", Req("POST", "/api/meetings/{meeting_done}/minutes/corrections",
                   json={"reason": "Ghi số", "changes": {"number": "7"}}), 201, outside_api_minutes_correct, "chutri"),
    ("GET", "/api/meetings/{meeting_id}/media"): Route(
        "api", Req("GET", "/api/meetings/{meeting_shared}/media"), 200, outside_api_media, "vinhyen"),
    ("GET", "/api/meetings/{meeting_id}/rollcall"): Route(
        "api", Req("GET", "/api/meetings/{meeting_shared}/rollcall?unit=25"), 200, outside_api_rollcall, "chutri"),
    ("POST", "/api/meetings/{meeting_id}/state"): Route(
        "api", Req("POST", "/api/meetings/{meeting_outside}/state", json={"to": "rehearsal"}), 200,
        outside_api_state, "chutri"),
    ("POST", "/api/meetings/{meeting_id}/rollcall"): Route(
        "api", Req("POST", "/api/meetings/{meeting_shared}/rollcall", json={"unit": "25", "status": "absent",
                                                                              "reason": "Mất điện"}), 200,
        outside_api_mark, "chutri"),
    ("POST", "/api/meetings/{meeting_id}/hand"): Route(
        "api", Req("POST", "/api/meetings/{meeting_shared}/hand", json={"up": True}), 200, outside_api_hand,
        "vinhyen"),
    ("POST", "/api/meetings/{meeting_id}/floor"): Route(
        "api", Req("POST", "/api/meetings/{meeting_shared}/floor",
                   json={"action": "grant", "unit": "25", "confirm": True}), 200,
        outside_api_floor, "chutri"),
    ("POST", "/api/meetings/{meeting_id}/mute"): Route(
        "api", Req("POST", "/api/meetings/{meeting_shared}/mute", json={"muted": True, "unit": "25"}), 200,
        outside_api_mute, "chutri"),
    # Conclusions and directives (JSON API): the samples are the ministry chair's or a ward's (Phú Thọ's
    # operator is locked by an earlier sample).
    ("POST", "/api/meetings/{meeting_id}/conclusions"): Route(
        "api", Req("POST", "/api/meetings/{meeting_shared}/conclusions",
                   json={"text": "Kết luận mẫu 2", "directives": [new_directive("25")]}), 201,
        outside_api_conclude, "chutri"),
    ("GET", "/api/meetings/{meeting_id}/conclusions"): Route(
        "api", Req("GET", "/api/meetings/{meeting_shared}/conclusions"), 200, outside_api_conclusions, "chutri"),
    ("POST", "/api/conclusions/{conclusion_id}/directives"): Route(
        "api", Req("POST", "/api/conclusions/{conclusion_shared}/directives", json=new_directive("79")), 201,
        outside_api_add_directive, "chutri"),
    ("POST", "/api/assignments/{assignment_id}/breakdown"): Route(
        "api", Req("POST", "/api/assignments/{assignment_25}/breakdown", json=new_directive("08740")), 201,
        outside_api_breakdown, "chutri"),
    ("POST", "/api/assignments/{assignment_id}/reports"): Route(
        "api", Req("POST", "/api/assignments/{assignment_08707}/reports", json={"text": "Đang làm", "percent": 30}),
        201, outside_api_report, "vinhyen"),
    ("POST", "/api/assignments/{assignment_id}/done"): Route(
        "api", Req("POST", "/api/assignments/{assignment_08740}/done"), 200, outside_api_done, "chutri"),
    ("GET", "/api/assignments/{assignment_id}"): Route(
        "api", Req("GET", "/api/assignments/{assignment_25}"), 200, outside_api_assignment, "chutri"),
    ("GET", "/api/attachments/{attachment_id}"): Route(
        "api", Req("GET", "/api/attachments/{attachment_25}"), 200, outside_api_attachment, "chutri"),
    ("GET", "/api/directives"): Route("api", Req("GET", "/api/directives?unit=25"), 200, outside_api_directives,
                                      "chutri"),
    ("GET", "/api/directives/dashboard"): Route("api", Req("GET", "/api/directives/dashboard"), 200,
                                                outside_api_dashboard, "chutri"),
    ("GET", "/api/directives/{directive_id}"): Route(
        "api", Req("GET", "/api/directives/{directive_shared}"), 200, outside_api_directive, "chutri"),
    ("GET", "/directives"): Route("page", Req("GET", "/directives?unit=25"), 200, outside_directives_page, "chutri"),
    ("GET", "/directives/dashboard"): Route("page", Req("GET", "/directives/dashboard"), 200, outside_dashboard_page,
                                            "chutri"),
    ("GET", "/directives/{directive_id}"): Route("page", Req("GET", "/directives/{directive_shared}"), 200,
                                                 outside_directive_page, "chutri"),
    ("GET", "/assignments/{assignment_id}"): Route("page", Req("GET", "/assignments/{assignment_25}"), 200,
                                                   outside_assignment_page, "chutri"),
    ("GET", "/directives/tree"): Route("page", Req("GET", "/directives/tree?unit=25"), 200, outside_directive_trees,
                                       "chutri"),
    ("GET", "/directives/followup.xlsx"): Route("page", Req("GET", "/directives/followup.xlsx?unit=25"), 200,
                                                outside_followup_export, "chutri"),
}
PUBLIC_PREFIXES = ("/login", "/healthz", "/metrics", "/static/", "/lang/")


def route_keys(app: Any) -> set[tuple[str, str]]:
    """(method, canonical path) of every route; HEAD rides along with its GET."""
    keys = set()
    for route in app.router.routes():
        method = "GET" if route.method == "HEAD" else route.method
        keys.add((method, route.resource.canonical))
    return keys


async def test_every_route_is_classified(live_sqlite: LiveServer) -> None:
    keys = route_keys(live_sqlite.app)
    unclassified = sorted(keys - ROUTES.keys())
    assert not unclassified, f"routes missing from the scope matrix in tests/test_scope.py: {unclassified}"
    stale = sorted(ROUTES.keys() - keys)
    assert not stale, f"the scope matrix names routes that no longer exist: {stale}"
    for (_method, canonical), route in ROUTES.items():
        assert route.access in ("public", "page", "api") and route.by in ACCOUNTS
        assert (route.access == "api") == canonical.startswith("/api/"), canonical
        assert (route.access == "public") == route.sample.path.startswith(PUBLIC_PREFIXES), canonical


async def test_samples_hit_their_routes(live_sqlite: LiveServer) -> None:
    """Each sample request resolves to the route it stands for (anonymous answers alone could not tell)."""
    class AnyId(dict[str, int]):
        def __missing__(self, key: str) -> int:
            return 7

    for (method, canonical), route in ROUTES.items():
        req = make_mocked_request(route.sample.method, route.sample.path.format_map(AnyId()), app=live_sqlite.app)
        match = await live_sqlite.app.router.resolve(req)
        resource = match.route.resource
        assert resource is not None and resource.canonical == canonical, f"{method} {canonical}: {match}"
        assert route.sample.method == method


# ---------------------------------------------------------------------------------------------
# Anonymous


async def test_anonymous_reaches_only_public_routes(live: LiveServer) -> None:
    ids = await fixture_ids(live)
    anon = live.client()
    before = await snapshot(live)
    for (method, _canonical), route in ROUTES.items():
        for m in (method, "HEAD") if method == "GET" else (method,):
            resp = await send(anon, replace(route.sample, method=m), ids=ids)
            where = f"anonymous {m} {resp.url.path_qs}"
            if route.access == "public":
                assert resp.status == route.ok, f"{where}: {resp.status}"
            elif route.access == "page":
                assert resp.status == 303, f"{where}: {resp.status}"
                assert URL(resp.headers["Location"]).query.get("next") == resp.url.path_qs, where
            else:
                assert resp.status == 401, f"{where}: {resp.status}"
                assert resp.headers.get("WWW-Authenticate", "").startswith("Bearer"), where
                if m != "HEAD":
                    assert (await resp.json())["error"]["code"] == "unauthenticated", where
    # Paths no route serves are not revealed either: the answer is the same as for a real route.
    resp = await anon.get("/khong-co-trang-nay", allow_redirects=False)
    assert (resp.status, resp.headers.get("Location")) == (303, "/login?next=/khong-co-trang-nay")
    resp = await anon.get("/api/khong-co", allow_redirects=False)
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "unauthenticated"
    assert changed(before, await snapshot(live)) == set(), "anonymous requests changed the database"

    # Positive control: the very same samples, sent with a session of the account named in the
    # matrix, are accepted; so the refusals above came from the missing login, not broken samples.
    sessions = {name: await session_client(live, name) for name in {r.by for r in ROUTES.values()}}
    ordered = sorted(ROUTES.items(), key=lambda kv: kv[0] == ("POST", "/logout"))  # logout last
    for (method, canonical), route in ordered:
        if route.access == "public":
            continue
        who = sessions[route.by]
        if route.sample.ws:
            ws = await WsClient.open(who)
            assert (await ws.request({"type": "ping"}))["type"] == "pong", canonical
            await ws.close()
            continue
        resp = await send(who.http, route.sample, who.csrf, ids)
        assert resp.status == route.ok, f"{route.by} {method} {canonical}: {resp.status} {await resp.text()}"
        if resp.status == 303 and canonical != "/logout":
            assert not resp.headers["Location"].startswith("/login"), canonical
    after = changed(before, await snapshot(live))
    expected = [("user", "moi-25"), ("user", "mau-api"), ("user", "phutho"), ("user", "hoankiem"),
                ("unit", "99101"), ("unit", "99102"), ("token", str(ids["token_25"])), ("token", str(ids["token_BCA"])),
                ("meeting", str(ids["meeting_outside"])), ("seat", f"{ids['meeting_shared']}:{ids['unit_25']}"),
                ("seat", f"{ids['meeting_shared']}:{ids['unit_08707']}"), ("kpi_report", "mau-25:1"),
                ("kpi_report", "mau-csv-25:1"), ("kpi_report", "mau-tai-08707:1"),
                ("kpi", f"{ids['unit_25']}:DVC_TY_LE_DUNG_HAN:2022-06")]
    assert [key for key in expected if key not in after] == [], "samples that changed nothing"
    assert len([key for key in after if key[0] == "meeting"]) == 4  # two scheduled, two changed


# ---------------------------------------------------------------------------------------------
# Province accounts


@pytest.mark.parametrize("username", ["hanoi", "qt_hanoi", "xem_hanoi"])
async def test_province_account_reaches_nothing_outside(live: LiveServer, username: str) -> None:
    world = await build_world(live)
    client = await live.login(username)
    for (method, canonical), route in ROUTES.items():
        before = await snapshot(live)
        allowed = await route.outside(world, client) or set()
        diff = changed(before, await snapshot(live))
        assert diff <= allowed, f"{username} via {method} {canonical} changed {sorted(diff - allowed)}"
    # Phú Thọ's operator was never logged out or locked by anything above.
    assert (await (await world.outsider.get("/api/me")).json())["unit"]["code"] == "25"


async def test_inside_the_province_works(live: LiveServer) -> None:
    """The same routes succeed inside Hà Nội, so the refusals above are about scope alone."""
    qt = await live.login("qt_hanoi")
    hanoi = await live.login("hanoi")

    created = await expect(await send(qt.http, Req("POST", "/api/users", json=new_user("00070")), qt.csrf), 201)
    assert created["user"]["unit_code"] == "00070"
    page = await expect(await send(qt.http, Req("POST", "/admin/users", form={**new_user("00004"),
                                                                                "username": "moi-badinh"}),
                                   qt.csrf), 200)
    assert "Đã tạo tài khoản moi-badinh" in page
    users = (await expect(await qt.get("/api/users"), 200))["users"]
    assert {u["username"] for u in users} == HANOI_USERS | {"moi-00070", "moi-badinh"}
    assert {u["unit_code"] for u in users} <= HANOI_UNITS

    subtree = await expect(await hanoi.get("/api/units/01/subtree"), 200)
    assert {u["code"] for u in subtree["units"]} == HANOI_UNITS and subtree["count"] == 3
    communes = await expect(await hanoi.get("/api/units/01/subtree?level=commune"), 200)
    assert {u["code"] for u in communes["units"]} == {"00070", "00004"}
    assert (await expect(await hanoi.get("/api/units/00070"), 200))["unit"]["name"] == "Phường Hoàn Kiếm"
    await expect(await hanoi.get("/api/units/BCA"), 403, "out_of_scope")
    await expect(await hanoi.get("/units/25"), 403)
    page = await expect(await hanoi.get("/units/00070"), 200)
    assert "Thành phố Hà Nội" in page and "Phường Hoàn Kiếm" in page

    token = await expect(await send(qt.http, Req("POST", "/api/tokens", json=new_token("00070")), qt.csrf), 201)
    await expect(await send(qt.http, Req("DELETE", f"/api/tokens/{token['id']}"), qt.csrf), 200)
    assert [t["status"] for t in (await expect(await qt.get("/api/tokens"), 200))["tokens"]] == ["revoked"]

    hoankiem = await session_client(live, "hoankiem")
    ids = {"user_hoankiem": next(u["id"] for u in users if u["username"] == "hoankiem")}
    await expect(await send(qt.http, Req("POST", "/api/users/{user_hoankiem}/lock"), qt.csrf, ids), 200)
    await expect(await hoankiem.get("/api/me"), 401, "unauthenticated")  # locking ends its sessions
    await expect(await send(qt.http, Req("POST", "/api/users/{user_hoankiem}/unlock"), qt.csrf, ids), 200)

    # The own province may be re-imported unchanged (same parent) and its communes renamed.
    rows = "99010,Phường Mới,commune,01\n00070,Phường Hoàn Kiếm (mới),commune,01\n01,Thành phố Hà Nội,province,BCA\n"
    result = await expect(await send(qt.http, Req("POST", "/api/units/import", csv=rows), qt.csrf), 200)
    assert result == {"added": 1, "updated": 1, "unchanged": 1}
    subtree = await expect(await hanoi.get("/api/units/01/subtree"), 200)
    assert {u["code"] for u in subtree["units"]} == HANOI_UNITS | {"99010"}

    # In the nationwide meeting Hà Nội's bridge runs its own roll call and console.
    ids = await fixture_ids(live)
    mark = Req("POST", "/api/meetings/{meeting_shared}/rollcall", json={"unit": "00070", "status": "absent",
                                                                         "reason": "Mất điện"})
    await expect(await send(hanoi.http, mark, hanoi.csrf, ids), 200)
    seats = await expect(await send(hanoi.http, Req("GET", "/api/meetings/{meeting_shared}/rollcall?unit=00070"),
                                    ids=ids), 200)
    assert [(s["code"], s["status"], s["reason"]) for s in seats["seats"]] == [("00070", "absent", "Mất điện")]
    await expect(await send(hanoi.http, Req("GET", "/meetings/{meeting_shared}/province/01"), ids=ids), 200,
                 allow=CHAIR_NAME)

    # And the ministry reaches the provinces Hà Nội may not.
    ministry = await session_client(live, "quantri")
    assert (await (await ministry.get("/api/units/25")).json())["unit"]["name"] == "Phú Thọ"


# ---------------------------------------------------------------------------------------------
# Error shape


async def test_unknown_routes_answer_404_in_vietnamese(live_sqlite: LiveServer) -> None:
    c = await live_sqlite.login("hanoi")
    resp = await c.get("/api/khong-co")
    assert resp.status == 404 and resp.content_type == "application/json"
    assert await resp.json() == {"error": {"code": "not_found", "message": "Không tìm thấy trang."}}
    resp = await c.get("/khong-co-trang-nay")
    assert resp.status == 404 and resp.content_type == "text/html"
    page = await resp.text()
    assert 'lang="vi"' in page and "Lỗi 404" in page and "Không tìm thấy trang." in page
    resp = await c.api("PUT", "/api/users", json={})
    assert resp.status == 405 and (await resp.json())["error"]["code"] == "method_not_allowed"


# ---------------------------------------------------------------------------------------------
# Machine tokens: each scope reaches exactly the routes it names (and there, only its subtree);
# every other route — present or future — answers 403 ``token_scope`` before its handler runs,
# and changes nothing. Written here independently of the routes' declarations, so a declaration
# that grants too much (or too little) fails the test.

ALWAYS = {("GET", "/api/me"), ("GET", "/api/openapi.json")}
TOKEN_ROUTES: dict[str, set[tuple[str, str]]] = {
    "units:read": ALWAYS | {("GET", "/api/units/{code}"), ("GET", "/api/units/{code}/subtree"),
                            ("GET", "/api/units/{code}/search")},
    "kpi:write": ALWAYS | {("POST", "/api/kpi/reports"), ("POST", "/api/kpi/reports.csv"),
                           ("GET", "/api/kpi/{unit_code}")},
    "bridge": ALWAYS | {("GET", "/api/meetings"), ("GET", "/api/meetings/{meeting_id}"),
                        ("POST", "/api/meetings/{meeting_id}/hand"), ("GET", "/ws")},
}
TOKEN_UNITS = ("01", "BCA")  # Hà Nội's token and the ministry's


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def token_refused(w: World, http: aiohttp.ClientSession, token: str, method: str, route: Route) -> None:
    """The route's own sample, with the token: 403 token_scope (GET routes: HEAD too)."""
    if route.sample.ws:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect("/ws", headers=bearer(token))
        assert refused.value.status == 403
        return
    for m in (method, "HEAD") if method == "GET" else (method,):
        resp = await send(http, replace(route.sample, method=m), ids=w.ids, headers=bearer(token))
        if m == "HEAD":
            assert resp.status == 403, f"HEAD {route.sample.path}: {resp.status}"
        else:
            await expect(resp, 403, "token_scope", allow=CHAIR_NAME)


async def answer(resp: aiohttp.ClientResponse, status: int = 200) -> Any:
    """Status and body, without the leak check (the ministry's token sees the whole country)."""
    assert resp.status == status, f"{resp.method} {resp.url.path_qs}: {resp.status} {await resp.text()}"
    return await resp.json()


async def units_read_probe(w: World, http: aiohttp.ClientSession, token: str, code: str) -> None:
    auth = bearer(token)
    if code == "01":
        sub = await expect(await http.get("/api/units/01/subtree", headers=auth), 200)
        assert {u["code"] for u in sub["units"]} == HANOI_UNITS
        await expect(await http.get("/api/units/00070", headers=auth), 200)
        for outside in OUTSIDE_UNITS:
            await expect(await http.get(f"/api/units/{outside}", headers=auth), 403, "out_of_scope")
            await expect(await http.get(f"/api/units/{outside}/subtree", headers=auth), 403, "out_of_scope")
    else:
        assert (await answer(await http.get("/api/units/25", headers=auth)))["unit"]["code"] == "25"
        assert (await answer(await http.get("/api/units/79/subtree", headers=auth)))["count"] == 3


async def kpi_write_probe(w: World, http: aiohttp.ClientSession, token: str, code: str) -> None:
    auth = bearer(token)
    if code == "01":
        got = await expect(await http.post("/api/kpi/reports", json={"reports": [kpi_report("00070", "tok-01")]},
                                           headers=auth), 200)
        assert got["accepted"] == 1
        csv = {**auth, "Content-Type": "text/csv"}
        await expect(await http.post("/api/kpi/reports.csv", data=KPI_CSV_HEADER + kpi_csv("00004", "tok-csv-01"),
                                     headers=csv), 200)
        for outside in ("25", "08707", "BCA"):
            await expect(await http.post("/api/kpi/reports", json={"reports": [kpi_report(outside, "tok-x")]},
                                         headers=auth), 403, "out_of_scope")
            await expect(await http.post("/api/kpi/reports.csv", data=KPI_CSV_HEADER + kpi_csv(outside, "tok-y"),
                                         headers=csv), 403, "out_of_scope")
            await expect(await http.get(f"/api/kpi/{outside}", headers=auth), 403, "out_of_scope")
        assert (await expect(await http.get("/api/kpi/01", headers=auth), 200))["unit"]["code"] == "01"
    else:
        await answer(await http.post("/api/kpi/reports", json={"reports": [kpi_report("08740", "tok-bca")]},
                                     headers=auth))
        assert (await answer(await http.get("/api/kpi/25", headers=auth)))["unit"]["code"] == "25"


async def bridge_probe(w: World, http: aiohttp.ClientSession, token: str, code: str) -> None:
    auth = bearer(token)
    shared, outside = w.ids["meeting_shared"], w.ids["meeting_outside"]
    if code == "01":
        listed = await expect(await http.get("/api/meetings", headers=auth), 200, allow=CHAIR_NAME)
        assert sorted(m["id"] for m in listed["meetings"]) == sorted([shared, w.ids["meeting_done"]])
        await expect(await http.get(f"/api/meetings/{outside}", headers=auth), 404, "meeting_not_found")
        await expect(await http.post(f"/api/meetings/{outside}/hand", json={"up": True}, headers=auth), 404,
                     "meeting_not_found")
        await expect(await http.get(f"/api/meetings/{shared}", headers=auth), 200, allow=CHAIR_NAME)
        await expect(await http.post(f"/api/meetings/{shared}/hand", json={"up": True}, headers=auth), 200)
    else:
        assert (await answer(await http.get(f"/api/meetings/{outside}", headers=auth)))["meeting"]["id"] == outside
    ws = await http.ws_connect("/ws", headers=auth)
    try:
        await ws.send_json({"type": "ping", "id": 1})
        assert (await ws.receive_json(timeout=10))["type"] == "pong"
    finally:
        await ws.close()


TOKEN_PROBES = {"units:read": units_read_probe, "kpi:write": kpi_write_probe, "bridge": bridge_probe}


async def test_machine_tokens_reach_exactly_their_scope(live: LiveServer) -> None:
    w = await build_world(live)
    http = live.client()
    token_routes = {key: route for key, route in ROUTES.items() if route.access == "api" or route.sample.ws}
    assert {key for keys in TOKEN_ROUTES.values() for key in keys} <= token_routes.keys()
    for scope, reached in TOKEN_ROUTES.items():
        for code in TOKEN_UNITS:
            _tid, token = await issue_token(live, code, frozenset({scope}))
            before = await snapshot(live)
            for (method, canonical), route in token_routes.items():
                if (method, canonical) not in reached:
                    await token_refused(w, http, token, method, route)
            assert changed(before, await snapshot(live)) == set(), f"{scope} token of {code}: refusals changed data"
            for key in ALWAYS:
                assert (await http.get(key[1], headers=bearer(token))).status == 200, (scope, key)
            await TOKEN_PROBES[scope](w, http, token, code)
            # Positive control: the diff above would have seen what the allowed calls changed.
            after = changed(before, await snapshot(live))
            writes = scope == "kpi:write" or (scope, code) == ("bridge", "01")  # reports; a raised hand
            assert writes == (after != set()), f"{scope} token of {code}: {sorted(after)}"
    # A token of several scopes gets the union (here: reports, and still no directives).
    _tid, both = await issue_token(live, "01", frozenset({"units:read", "kpi:write"}))
    await expect(await http.get("/api/units/01", headers=bearer(both)), 200)
    await expect(await http.get("/api/kpi/01", headers=bearer(both)), 200)
    await expect(await http.get("/api/directives", headers=bearer(both)), 403, "token_scope")


async def test_a_kpi_token_reads_no_directives_rollcalls_or_files(live: LiveServer) -> None:
    """The audit's case (#13, finding 4): a source system's kpi:write token read an attachment's
    content, assignments, roll calls, directives and conclusions. The ministry's token reaches
    every unit, so only the scope can refuse it."""
    w = await build_world(live)
    http = live.client()
    for code in TOKEN_UNITS:
        _tid, token = await issue_token(live, code, frozenset({"kpi:write"}))
        own = "01" if code == "01" else "25"
        for path in (f"/api/attachments/{w.ids['attachment_25']}", f"/api/assignments/{w.ids[f'assignment_{own}']}",
                     f"/api/meetings/{w.ids['meeting_shared']}/rollcall", f"/api/directives?unit={own}",
                     "/api/directives/dashboard", f"/api/directives/{w.ids['directive_shared']}",
                     f"/api/meetings/{w.ids['meeting_shared']}/conclusions",
                     f"/api/meetings/{w.ids['meeting_done']}/minutes",
                     f"/api/meetings/{w.ids['meeting_shared']}/media", "/api/meetings"):
            resp = await http.get(path, headers=bearer(token))
            assert resp.status == 403, f"{code} {path}: {resp.status} {(await resp.read())[:200]!r}"
            assert (await resp.json())["error"]["code"] == "token_scope", path
        # What the scope names still works: reporting and reading back the figures.
        assert (await http.get(f"/api/kpi/{own}", headers=bearer(token))).status == 200
