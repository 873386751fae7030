"""Meetings: list and scheduling, the chair / province / site consoles, the JSON API, and the
attendance export (server.exports.attendance). Live updates ride the websocket (server.live)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from server.exports import attendance
from server.http.contract import CHAIR, OPERATORS, api
from server.http.schemas import BOOL, ID, INT, LEVEL, MEETING_STATE, STR, array, nullable, obj, ref
from server.services import meetings as meeting_service
from server.services.access import ensure_reaches
from server.state import CLOCK, DB, DEPS, SETTINGS
from server.timefmt import local, parse_local
from server.web_util import client_ip, form_body, json_body, path_id, render, require_principal
from sessions.errors import DomainError, Forbidden, NotFound, ValidationFailed
from sessions.meetings import ATTENDANCE_LABEL_VI, STATE_LABEL_VI, Attendance, MeetingState
from sessions.roles import Permission, Principal, Role
from sessions.store import live, units
from sessions.store import meetings as store
from sessions.units import Level

routes = web.RouteTableDef()
LEVEL_CHOICES = (Level.PROVINCE, Level.DISTRICT, Level.COMMUNE)


def _meeting_id(request: web.Request) -> int:
    return path_id(request, "meeting_id")


async def levels_offered(db: AsyncSession, unit_id: int) -> tuple[Level, ...]:
    """The participant levels a form offers: only those the imported tree has below the unit (the
    2025 tree has no district level)."""
    present = await units.count_by_level(db, unit_id)
    return tuple(lv for lv in LEVEL_CHOICES if present.get(lv.value))


# ---------------------------------------------------------------- list and schedule (pages)

async def _list_page(request: web.Request, *, error: str | None = None, form: dict[str, Any] | None = None,
                     status: int = 200) -> web.StreamResponse:
    p = require_principal(request)
    async with request.app[DB]() as db:
        items = await store.list_for_unit(db, p.unit_id)
        level_choices = await levels_offered(db, p.unit_id)
        kept = form or {"unit_0": p.unit_code}
        names = {}  # what the unit pickers show for the codes already in the form
        for i in range(3):
            code = str(kept.get(f"unit_{i}", ""))
            if code:
                try:
                    unit = await units.get_by_code(db, code)
                except NotFound:
                    continue
                if await units.is_within(db, p.unit_id, unit.id):
                    names[code] = unit.name
    default_start = (request.app[CLOCK]() + timedelta(days=1)).replace(minute=0, second=0)
    return render(request, "meetings.html", {
        "meetings": items, "can_schedule": p.can(Permission.CHAIR_MEETINGS), "error": error,
        "form": form or {"start": local(default_start, "%Y-%m-%dT%H:%M"), "unit_0": p.unit_code,
                         "levels_0": ["province", "commune"]},
        "state_label": STATE_LABEL_VI, "local": local, "level_choices": level_choices, "root_code": p.unit_code,
        "unit_names": names,
    }, status=status)


@routes.get("/meetings")
async def meetings_page(request: web.Request) -> web.StreamResponse:
    return await _list_page(request)


def _form_selectors(form: Any) -> tuple[list[store.Selector], dict[str, Any]]:
    kept: dict[str, Any] = {}
    raw = []
    for i in range(3):
        code = str(form.get(f"unit_{i}", "")).strip()
        levels = [str(v) for v in form.getall(f"levels_{i}", [])]
        kept[f"unit_{i}"], kept[f"levels_{i}"] = code, levels
        if code:
            raw.append({"unit": code, "levels": levels})
    return store.parse_selectors(raw), kept


@routes.post("/meetings")
async def meetings_create(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    form = await form_body(request)
    kept: dict[str, Any] = {k: str(form.get(k, "")) for k in ("title", "agenda", "start")}
    try:
        selectors, sel_kept = _form_selectors(form)
        kept.update(sel_kept)
        try:
            start = parse_local(kept["start"])
        except ValueError:
            raise ValidationFailed("Thời gian bắt đầu không hợp lệ", code="start_invalid", field="start") from None
        meeting_id = await meeting_service.schedule(request.app[DEPS], p, title=kept["title"],
                                                agenda=kept["agenda"].splitlines(), start=start,
                                                selectors=selectors, ip=client_ip(request))
    except DomainError as exc:
        return await _list_page(request, error=exc.message, form=kept, status=exc.status)
    raise web.HTTPSeeOther(f"/meetings/{meeting_id}")


# ---------------------------------------------------------------- consoles (pages)

async def _context(request: web.Request) -> tuple[Principal, store.MeetingView, bool]:
    p = require_principal(request)
    async with request.app[DB]() as db:
        meeting = await meeting_service.ensure_visible(db, p, _meeting_id(request))
        chair = await meeting_service.is_chair_of(db, p, meeting)
    return p, meeting, chair


def _page_ctx(meeting: store.MeetingView) -> dict[str, Any]:
    return {"meeting": meeting, "state_label": STATE_LABEL_VI, "local": local,
            "attendance_label": {a.value: t for a, t in ATTENDANCE_LABEL_VI.items()}}


@routes.get("/meetings/{meeting_id:\\d+}")
async def meeting_home(request: web.Request) -> web.StreamResponse:
    """Send each role to its console."""
    p, meeting, chair = await _context(request)
    if meeting.state is MeetingState.CONCLUDED:  # what is left of a concluded meeting: its minutes
        raise web.HTTPSeeOther(f"/meetings/{meeting.id}/minutes")
    if chair:
        raise web.HTTPSeeOther(f"/meetings/{meeting.id}/chair")
    if p.can(Permission.OPERATE_BRIDGE):
        raise web.HTTPSeeOther(f"/meetings/{meeting.id}/province/{p.unit_code}")
    raise web.HTTPSeeOther(f"/meetings/{meeting.id}/site")


@routes.get("/meetings/{meeting_id:\\d+}/chair")
async def chair_console(request: web.Request) -> web.StreamResponse:
    p, meeting, chair = await _context(request)
    if not chair:
        raise Forbidden("Chỉ chủ trì hội nghị mở được bàn điều khiển này", code="chair_only")
    async with request.app[DB]() as db:
        history = await store.transitions(db, meeting.id)
        level_choices = await levels_offered(db, p.unit_id)
    return render(request, "chair_console.html", {**_page_ctx(meeting), "transitions": history,
                                                  "root_code": p.unit_code, "level_choices": level_choices})


@routes.get("/meetings/{meeting_id:\\d+}/province/{code}")
async def province_console(request: web.Request) -> web.StreamResponse:
    p, meeting, chair = await _context(request)
    async with request.app[DB]() as db:
        unit = await units.get_by_code(db, request.match_info["code"])
        await ensure_reaches(db, p, unit.id)
    if not (chair or p.can(Permission.OPERATE_BRIDGE)):
        raise Forbidden("Chỉ điểm cầu tỉnh hoặc chủ trì mở được bàn điều khiển này", code="forbidden")
    return render(request, "province_console.html", {**_page_ctx(meeting), "unit": unit})


@routes.get("/meetings/{meeting_id:\\d+}/site")
async def site_page(request: web.Request) -> web.StreamResponse:
    p, meeting, _chair = await _context(request)
    async with request.app[DB]() as db:
        unit = await units.get_by_id(db, p.unit_id)
    return render(request, "site.html", {**_page_ctx(meeting), "unit": unit,
                                         "can_operate": p.can(Permission.OPERATE_SITE)})


# ---------------------------------------------------------------- attendance export

async def _export_rows(request: web.Request) -> tuple[store.MeetingView, list[list[Any]]]:
    p = require_principal(request)
    async with request.app[DB]() as db:
        meeting = await meeting_service.ensure_visible(db, p, _meeting_id(request))
        chair = await meeting_service.is_chair_of(db, p, meeting)
        rows = await live.attendance_rows(db, meeting.id)
        scope = None if chair else await units.subtree_ids(db, p.unit_id)
    if not chair and not p.can(Permission.OPERATE_BRIDGE):
        raise Forbidden("Chỉ chủ trì và điểm cầu tỉnh được xuất danh sách điểm danh", code="forbidden")
    return meeting, attendance.table(rows, scope, request.app[CLOCK]())


@routes.get("/meetings/{meeting_id:\\d+}/attendance.csv")
async def attendance_csv(request: web.Request) -> web.StreamResponse:
    meeting, rows = await _export_rows(request)
    return web.Response(body=attendance.to_csv(rows), content_type="text/csv", charset="utf-8", headers={
        "Content-Disposition": f'attachment; filename="diem-danh-hoi-nghi-{meeting.id}.csv"'})


@routes.get("/meetings/{meeting_id:\\d+}/attendance.xlsx")
async def attendance_xlsx(request: web.Request) -> web.StreamResponse:
    meeting, rows = await _export_rows(request)
    return web.Response(body=attendance.to_xlsx(meeting.title, rows), headers={
        "Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "Content-Disposition": f'attachment; filename="diem-danh-hoi-nghi-{meeting.id}.xlsx"'})


# ---------------------------------------------------------------- JSON API

def _ok(**extra: object) -> web.Response:
    return web.json_response({"ok": True, **extra})


@routes.get("/api/meetings")
@api(summary="Hội nghị mà đơn vị chủ trì hoặc tham dự (hay đơn vị cấp dưới tham dự)", scopes={"bridge"},
     response=obj({"meetings": array(ref("Meeting"))}))
async def api_list(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    async with request.app[DB]() as db:
        items = await store.list_for_unit(db, p.unit_id)
    return web.json_response({"meetings": [m.as_dict() for m in items]})


@routes.post("/api/meetings")
@api(summary="Lên lịch hội nghị", roles=CHAIR, status=201, response=obj({"meeting": ref("Meeting")}),
     request=obj({"title": STR, "start": STR, "participants": array(obj({"unit": STR}, {"levels": array(LEVEL)}))},
                 {"agenda": array(STR)}))
async def api_create(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    body = await json_body(request)
    agenda = body.get("agenda", [])
    if not isinstance(agenda, list) or not all(isinstance(a, str) for a in agenda):
        raise ValidationFailed("'agenda' phải là danh sách chuỗi", code="agenda_invalid", field="agenda")
    try:
        start = parse_local(str(body.get("start", "")))
    except ValueError:
        raise ValidationFailed("Thời gian bắt đầu không hợp lệ (ISO 8601)", code="start_invalid",
                               field="start") from None
    meeting_id = await meeting_service.schedule(request.app[DEPS], p, title=str(body.get("title", "")), agenda=agenda,
                                            start=start, selectors=store.parse_selectors(body.get("participants")),
                                            ip=client_ip(request))
    async with request.app[DB]() as db:
        meeting = await store.get(db, meeting_id)
    return web.json_response({"meeting": meeting.as_dict()}, status=201)


@routes.get("/api/meetings/{meeting_id:\\d+}")
@api(summary="Một hội nghị và trạng thái trực tiếp của nó", scopes={"bridge"},
     response=obj({"meeting": ref("Meeting"), "live": {"type": "object"}}))
async def api_get(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    async with request.app[DB]() as db:
        meeting = await meeting_service.ensure_visible(db, p, _meeting_id(request))
        snap = await live.meeting_snapshot(db, meeting.id, p.unit_id)
    return web.json_response({"meeting": meeting.as_dict(), "live": snap})


@routes.get("/api/meetings/{meeting_id:\\d+}/media")
@api(summary="Cách điểm cầu của người gọi vào hình và tiếng của hội nghị (bridge, mã tham gia, ICE); "
             "?preview=<mã đơn vị>: mã chỉ để xem hình và tiếng của một điểm cầu (khảm hình, xem trước)",
     roles=OPERATORS, errors={409}, query={"preview": STR},
     response=obj({"meeting": INT, "unit": STR, "role": {"enum": ["chair", "site"]}, "ice_servers": array({}),
                   "bridge": nullable(obj({"unit": STR, "url": STR}))}))
async def api_media(request: web.Request) -> web.StreamResponse:
    """The caller's site's way into the meeting's media: its bridge, a join token, ICE servers."""
    from server.services import media

    p = require_principal(request)
    async with request.app[DB]() as db:
        grant = await media.grant(request.app[DEPS], db, request.app[SETTINGS], p, _meeting_id(request),
                                  request.app[CLOCK](), preview=request.query.get("preview") or None)
    return web.json_response(grant, headers={"Cache-Control": "no-store"})


@routes.get("/api/meetings/{meeting_id:\\d+}/rollcall")
@api(summary="Điểm danh của một đơn vị trong phạm vi", query={"unit": STR},
     response=obj({"seq": INT, "seats": array({"type": "object"}), "provinces": {"type": "object"}}))
async def api_rollcall(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    async with request.app[DB]() as db:
        meeting = await meeting_service.ensure_visible(db, p, _meeting_id(request))
        unit = await units.get_by_code(db, request.query.get("unit", p.unit_code))
        if not await units.is_within(db, p.unit_id, unit.id):
            raise Forbidden("Không được xem điểm danh ngoài phạm vi của mình", code="out_of_scope")
        snap = await live.rollcall_snapshot(db, meeting.id, unit.id)
    return web.json_response(snap)


@routes.post("/api/meetings/{meeting_id:\\d+}/state")
@api(summary="Chuyển trạng thái hội nghị", roles=CHAIR, errors={409}, request=obj({"to": MEETING_STATE}),
     response=obj({"state": MEETING_STATE}))
async def api_state(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    body = await json_body(request)
    try:
        target = MeetingState(str(body.get("to", "")))
    except ValueError:
        raise ValidationFailed("Trạng thái hội nghị không hợp lệ", code="state_invalid", field="to") from None
    new = await meeting_service.change_state(request.app[DEPS], p, _meeting_id(request), target, client_ip(request))
    return web.json_response({"state": new.value})


@routes.post("/api/meetings/{meeting_id:\\d+}/rollcall")
@api(summary="Điểm danh một đơn vị", roles={Role.CHAIR, Role.BRIDGE_OPERATOR}, errors={409}, response=ref("Ok"),
     request=obj({"unit": STR, "status": {"enum": ["present_in_person", "absent", "not_called"]}},
                 {"reason": STR}))
async def api_mark(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    body = await json_body(request)
    try:
        status = Attendance(str(body.get("status", "")))
    except ValueError:
        raise ValidationFailed("Trạng thái điểm danh không hợp lệ", code="status_invalid", field="status") from None
    await meeting_service.mark(request.app[DEPS], p, _meeting_id(request), str(body.get("unit", "")), status,
                           str(body.get("reason", "")), client_ip(request))
    return _ok()


@routes.post("/api/meetings/{meeting_id:\\d+}/hand")
@api(summary="Giơ / hạ tay (chủ trì hạ tay bất kỳ điểm cầu nào)", scopes={"bridge"}, roles=OPERATORS, errors={409},
     request=obj({}, {"up": BOOL, "unit_id": ID, "all": BOOL}), response=obj({"ok": {"const": True}}, {"lowered": INT}))
async def api_hand(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    body = await json_body(request)
    unit_id = body.get("unit_id")
    up = _flag(body, "up", True)
    if _flag(body, "all", False):
        if up:
            raise ValidationFailed("Không thể giơ tay thay tất cả điểm cầu", code="bad_request", field="up")
        return _ok(lowered=await meeting_service.lower_all_hands(request.app[DEPS], p, _meeting_id(request)))
    await meeting_service.set_hand(request.app[DEPS], p, _meeting_id(request), up,
                               unit_id if isinstance(unit_id, int) else None)
    return _ok()


def _flag(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise ValidationFailed(f"Trường '{key}' phải là true hoặc false", code="bad_request", field=key)
    return value


@routes.post("/api/meetings/{meeting_id:\\d+}/floor")
@api(summary="Trao lời, mời người tiếp theo, thu hồi lời", roles=CHAIR, errors={409}, response=ref("Ok"),
     request=obj({"action": {"enum": ["grant", "next", "revoke"]}}, {"unit": STR, "unit_id": ID, "confirm": BOOL}))
async def api_floor(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    body = await json_body(request)
    action = body.get("action")
    mid = _meeting_id(request)
    if action == "grant":
        raw_id = body.get("unit_id")
        unit: str | int = raw_id if isinstance(raw_id, int) else str(body.get("unit", ""))
        await meeting_service.grant(request.app[DEPS], p, mid, unit, client_ip(request),
                                confirm=_flag(body, "confirm", False))
    elif action == "next":
        await meeting_service.next_speaker(request.app[DEPS], p, mid, client_ip(request))
    elif action == "revoke":
        await meeting_service.revoke(request.app[DEPS], p, mid, client_ip(request))
    else:
        raise ValidationFailed("'action' phải là grant, next hoặc revoke", code="unknown_action", field="action")
    return _ok()


@routes.post("/api/meetings/{meeting_id:\\d+}/mute")
@api(summary="Tắt / bật tiếng một điểm cầu (chủ trì: tất cả)", roles=OPERATORS, errors={409},
     request=obj({}, {"muted": BOOL, "unit": STR, "unit_id": ID, "all": BOOL}),
     response=obj({"ok": {"const": True}}, {"changed": INT}))
async def api_mute(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    body = await json_body(request)
    unit = body.get("unit")
    raw_id = body.get("unit_id")
    muted = _flag(body, "muted", True)
    if _flag(body, "all", False):
        changed = await meeting_service.set_all_muted(request.app[DEPS], p, _meeting_id(request), muted,
                                                      client_ip(request))
        return _ok(changed=changed)
    target: str | int | None = raw_id if isinstance(raw_id, int) and not isinstance(raw_id, bool) else (
        str(unit) if unit is not None else None)
    await meeting_service.set_muted(request.app[DEPS], p, _meeting_id(request), muted, target, client_ip(request))
    return _ok()
