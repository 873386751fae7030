"""Conclusions, directives and assignments under /api/ (see docs/protocol.md): record during a
live meeting, break down, report progress (JSON, or multipart with attachments), mark done, and
read — my unit's list by bucket, the dashboard, a directive's cascade tree, an assignment."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from server.http import attachments
from server.http.contract import OPERATORS, api
from server.http.schemas import DIRECTIVE_IN, ID, INT, STR, TIME, array, obj, ref
from server.services import directives as directive_service
from server.services import meetings as meeting_service
from server.services.access import ensure_reaches
from server.state import CLOCK, DB, DEPS, SETTINGS
from server.web_util import json_body, path_id, query_id, require_principal
from sessions.directives import DirectiveInput, parse_directive
from sessions.errors import ValidationFailed
from sessions.store import directive_followup as followup
from sessions.store import directive_views as views
from sessions.store import units
from sessions.store.directives import Created

routes = web.RouteTableDef()


def _id(request: web.Request, key: str) -> int:
    return path_id(request, key)


def _directives(raw: Any) -> list[DirectiveInput]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValidationFailed("'directives' phải là danh sách", code="directive_invalid", field="directives")
    return [parse_directive(item) for item in raw]


def _created(c: Created) -> dict[str, Any]:
    return {"id": c.directive_id, "assignments": len(c.assignment_ids),
            "assignment_ids": {str(u): a for u, a in c.assignment_ids.items()}}


# ---------------------------------------------------------------------------------- record

@routes.post("/api/meetings/{meeting_id:\\d+}/conclusions")
@api(summary="Ghi kết luận (và các chỉ đạo) trong hội nghị", roles=OPERATORS, status=201, errors={409},
     request=obj({"text": STR}, {"directives": array(DIRECTIVE_IN)}),
     response=obj({"conclusion": obj({"id": INT}), "directives": array(ref("Created"))}))
async def api_conclude(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    body = await json_body(request)
    given = _directives(body.get("directives"))
    cid, created = await directive_service.record_conclusion(request.app[DEPS], p, _id(request, "meeting_id"),
                                                         str(body.get("text", "")), given)
    return web.json_response({"conclusion": {"id": cid}, "directives": [_created(c) for c in created]}, status=201)


@routes.get("/api/meetings/{meeting_id:\\d+}/conclusions")
@api(summary="Kết luận của hội nghị (chỉ phần trong phạm vi)",
     response=obj({"conclusions": array(obj({"id": INT, "text": STR, "author": STR, "created_at": TIME,
                                             "directives": array(ref("Directive"))}))}))
async def api_conclusions(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    async with request.app[DB]() as db:
        await meeting_service.check_visible(db, p, _id(request, "meeting_id"))
        items = await views.conclusions_of(db, _id(request, "meeting_id"), p.unit_id, request.app[CLOCK]())
    return web.json_response({"conclusions": items})


@routes.post("/api/conclusions/{conclusion_id:\\d+}/directives")
@api(summary="Thêm chỉ đạo vào một kết luận", roles=OPERATORS, status=201, errors={409}, request=DIRECTIVE_IN,
     response=obj({"directive": ref("Created")}))
async def api_add_directive(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    given = parse_directive(await json_body(request))
    created = await directive_service.add_directive(request.app[DEPS], p, _id(request, "conclusion_id"), given)
    return web.json_response({"directive": _created(created)}, status=201)


# ---------------------------------------------------------------------------------- assignments

@routes.post("/api/assignments/{assignment_id:\\d+}/breakdown")
@api(summary="Giao tiếp nhiệm vụ cho đơn vị cấp dưới", roles=OPERATORS, status=201, errors={409},
     request=DIRECTIVE_IN, response=obj({"directive": ref("Created")}))
async def api_break_down(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    given = parse_directive(await json_body(request))
    created = await directive_service.break_down(request.app[DEPS], p, _id(request, "assignment_id"), given)
    return web.json_response({"directive": _created(created)}, status=201)


@routes.post("/api/assignments/{assignment_id:\\d+}/reports")
@api(summary="Báo cáo tiến độ nhiệm vụ (JSON, hoặc multipart có tệp đính kèm)", roles=OPERATORS, status=201,
     errors={409, 413, 415}, request=obj({"text": STR}, {"percent": INT}),
     response=obj({"report": obj({"id": INT, "attachments": INT})}))
async def api_report(request: web.Request) -> web.StreamResponse:
    """JSON ``{text, percent}``, or multipart/form-data with fields text, percent and files."""
    p = require_principal(request)
    settings = request.app[SETTINGS]
    percent: object
    if request.content_type == "multipart/form-data":
        # Who may report is settled before a byte of the upload is read (or written to disk).
        await directive_service.check_reporter(request.app[DEPS], p, _id(request, "assignment_id"))
        got = await attachments.receive(request, settings)
        text, percent, files = got.fields.get("text", ""), got.fields.get("percent", ""), got.files
    else:
        body = await json_body(request)
        text, percent, files = str(body.get("text", "")), body.get("percent"), []
    try:
        report_id = await directive_service.report(request.app[DEPS], p, _id(request, "assignment_id"), text, percent,
                                               files)
    except BaseException:
        attachments.discard(settings, files)  # nothing of a refused report stays, on disk either
        raise
    return web.json_response({"report": {"id": report_id, "attachments": len(files)}}, status=201)


@routes.post("/api/assignments/{assignment_id:\\d+}/done")
@api(summary="Đánh dấu hoàn thành nhiệm vụ", roles=OPERATORS, errors={409}, response=ref("Ok"))
async def api_done(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    await directive_service.complete(request.app[DEPS], p, _id(request, "assignment_id"))
    return web.json_response({"ok": True})


@routes.get("/api/assignments/{assignment_id:\\d+}")
@api(summary="Một nhiệm vụ trong phạm vi: báo cáo, lịch sử, tiến độ cấp dưới",
     response=obj({"assignment": ref("Assignment")}))
async def api_assignment(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    async with request.app[DB]() as db:
        data = await views.assignment_detail(db, _id(request, "assignment_id"), p.unit_id, request.app[CLOCK]())
    return web.json_response({"assignment": data})


@routes.get("/api/attachments/{attachment_id:\\d+}")
@api(summary="Nội dung một tệp đính kèm trong phạm vi", response_type="application/octet-stream",
     response={"type": "string", "format": "binary"})
async def api_attachment(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    async with request.app[DB]() as db:
        f = await views.attachment_for(db, _id(request, "attachment_id"), p.unit_id)
    path = attachments.path_of(request.app[SETTINGS], f.storage_path)
    if not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={
        "Content-Type": f.content_type,
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(f.filename)}",
        "Cache-Control": "no-store"})


# ---------------------------------------------------------------------------------- reading

@routes.get("/api/directives")
@api(summary="Nhiệm vụ của một đơn vị trong phạm vi (quá hạn trước)", query={"unit": STR},
     response=obj({"unit": ref("Unit"), "assignments": array(ref("Assignment"))}))
async def api_my_directives(request: web.Request) -> web.StreamResponse:
    """The assignments of ``?unit=`` (default: the caller's unit), overdue first."""
    p = require_principal(request)
    async with request.app[DB]() as db:
        unit = await units.get_by_code(db, request.query.get("unit", p.unit_code))
        await ensure_reaches(db, p, unit.id)
        items = await views.list_for_unit(db, unit.id, request.app[CLOCK]())
    return web.json_response({"unit": unit.as_dict(), "assignments": items})


@routes.get("/api/directives/dashboard")
@api(summary="Bảng theo dõi nhiệm vụ theo đơn vị (và tỷ lệ hoàn thành đúng hạn theo tháng)",
     query={"unit": STR, "meeting": ID, "depth": INT, "trend": INT},
     response=obj({"unit": ref("UnitRef"), "at": TIME, "buckets": array({"type": "object"}),
                   "rows": array({"type": "object"}), "totals": {"type": "object"}, "total": INT},
                  {"trend": array({"type": "object"})}))
async def api_dashboard(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    meeting = query_id(request, "meeting")
    depth = query_id(request, "depth", minimum=0)
    if request.query.get("trend", "0") not in ("0", "1"):
        raise ValidationFailed("Tham số 'trend' chỉ nhận 0 hoặc 1", code="trend_invalid", field="trend")
    trend = request.query.get("trend") == "1"
    async with request.app[DB]() as db:
        unit = await units.get_by_code(db, request.query.get("unit", p.unit_code))
        await ensure_reaches(db, p, unit.id)
        if meeting is not None:
            await meeting_service.check_visible(db, p, meeting)
        data = await views.dashboard(db, unit.id, request.app[CLOCK](), meeting_id=meeting, depth=depth)
        if trend:  # month by month, completions of the whole subtree (the chart beside the counts)
            data["trend"] = await followup.on_time_trend(db, unit.id, request.app[CLOCK]())
    return web.json_response(data)


@routes.get("/api/directives/{directive_id:\\d+}")
@api(summary="Một chỉ đạo và cây giao việc của nó (phần trong phạm vi)",
     response=obj({"directive": ref("Directive")}))
async def api_directive(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    async with request.app[DB]() as db:
        data = await views.directive_tree(db, _id(request, "directive_id"), p.unit_id, request.app[CLOCK]())
    return web.json_response({"directive": data})
