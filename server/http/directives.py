"""Conclusions, directives and assignments under /api/ (see docs/protocol.md): record during a
live meeting, break down, report progress (JSON, or multipart with attachments), mark done, and
read — my unit's list by bucket, the dashboard, a directive's cascade tree, an assignment."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from server.http import attachments
from server.services import directives as directive_service
from server.services import meetings as meeting_service
from server.services.access import ensure_reaches
from server.state import CLOCK, DB, DEPS, SETTINGS
from server.web_util import json_body, require_principal
from sessions.directives import DirectiveInput, parse_directive
from sessions.errors import ValidationFailed
from sessions.store import directive_views as views
from sessions.store import units
from sessions.store.directives import Created

routes = web.RouteTableDef()


def _id(request: web.Request, key: str) -> int:
    return int(request.match_info[key])


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
async def api_conclude(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    body = await json_body(request)
    given = _directives(body.get("directives"))
    cid, created = await directive_service.record_conclusion(request.app[DEPS], p, _id(request, "meeting_id"),
                                                         str(body.get("text", "")), given)
    return web.json_response({"conclusion": {"id": cid}, "directives": [_created(c) for c in created]}, status=201)


@routes.get("/api/meetings/{meeting_id:\\d+}/conclusions")
async def api_conclusions(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    async with request.app[DB]() as db:
        await meeting_service.check_visible(db, p, _id(request, "meeting_id"))
        items = await views.conclusions_of(db, _id(request, "meeting_id"), p.unit_id, request.app[CLOCK]())
    return web.json_response({"conclusions": items})


@routes.post("/api/conclusions/{conclusion_id:\\d+}/directives")
async def api_add_directive(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    given = parse_directive(await json_body(request))
    created = await directive_service.add_directive(request.app[DEPS], p, _id(request, "conclusion_id"), given)
    return web.json_response({"directive": _created(created)}, status=201)


# ---------------------------------------------------------------------------------- assignments

@routes.post("/api/assignments/{assignment_id:\\d+}/breakdown")
async def api_break_down(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    given = parse_directive(await json_body(request))
    created = await directive_service.break_down(request.app[DEPS], p, _id(request, "assignment_id"), given)
    return web.json_response({"directive": _created(created)}, status=201)


@routes.post("/api/assignments/{assignment_id:\\d+}/reports")
async def api_report(request: web.Request) -> web.StreamResponse:
    """JSON ``{text, percent}``, or multipart/form-data with fields text, percent and files."""
    p = require_principal(request)
    settings = request.app[SETTINGS]
    percent: object
    if request.content_type == "multipart/form-data":
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
async def api_done(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    await directive_service.complete(request.app[DEPS], p, _id(request, "assignment_id"))
    return web.json_response({"ok": True})


@routes.get("/api/assignments/{assignment_id:\\d+}")
async def api_assignment(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    async with request.app[DB]() as db:
        data = await views.assignment_detail(db, _id(request, "assignment_id"), p.unit_id, request.app[CLOCK]())
    return web.json_response({"assignment": data})


@routes.get("/api/attachments/{attachment_id:\\d+}")
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
async def api_my_directives(request: web.Request) -> web.StreamResponse:
    """The assignments of ``?unit=`` (default: the caller's unit), overdue first."""
    p = require_principal(request)
    async with request.app[DB]() as db:
        unit = await units.get_by_code(db, request.query.get("unit", p.unit_code))
        await ensure_reaches(db, p, unit.id)
        items = await views.list_for_unit(db, unit.id, request.app[CLOCK]())
    return web.json_response({"unit": unit.as_dict(), "assignments": items})


@routes.get("/api/directives/dashboard")
async def api_dashboard(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    meeting = request.query.get("meeting")
    depth = request.query.get("depth")
    if (meeting is not None and not meeting.isdigit()) or (depth is not None and not depth.isdigit()):
        raise ValidationFailed("'meeting' và 'depth' phải là số", code="invalid_input")
    async with request.app[DB]() as db:
        unit = await units.get_by_code(db, request.query.get("unit", p.unit_code))
        await ensure_reaches(db, p, unit.id)
        if meeting is not None:
            await meeting_service.check_visible(db, p, int(meeting))
        data = await views.dashboard(db, unit.id, request.app[CLOCK](), meeting_id=int(meeting) if meeting else None,
                                     depth=int(depth) if depth is not None else None)
    return web.json_response(data)


@routes.get("/api/directives/{directive_id:\\d+}")
async def api_directive(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    async with request.app[DB]() as db:
        data = await views.directive_tree(db, _id(request, "directive_id"), p.unit_id, request.app[CLOCK]())
    return web.json_response({"directive": data})
