"""Directive pages (Vietnamese, server-rendered): my unit's assignments by bucket with the overdue
reminder, the dashboard (counts per bucket per province, kept current over ``directives:<code>``),
a directive with its cascade tree, and an assignment with its reports and history. Changes go
through the JSON API (``server/http/directives.py``) from small forms in ``web/static/directives.js``."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from server.services.access import ensure_reaches
from server.services.directives import can_act
from server.state import CLOCK, DB
from server.timefmt import local
from server.web_util import path_id, render, require_principal
from sessions.directives import BUCKET_LABEL_VI, BUCKET_ORDER, Bucket
from sessions.store import directive_views as views
from sessions.store import units

routes = web.RouteTableDef()


def _ctx() -> dict[str, object]:
    return {"buckets": [(b.value, BUCKET_LABEL_VI[b]) for b in BUCKET_ORDER], "local_iso": _local_iso}


def _local_iso(text: str | None, fmt: str = "%d/%m/%Y") -> str:
    return local(datetime.fromisoformat(text), fmt) if text else ""


@routes.get("/directives")
async def my_directives(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    async with request.app[DB]() as db:
        unit = await units.get_by_code(db, request.query.get("unit", p.unit_code))
        await ensure_reaches(db, p, unit.id)
        items = await views.list_for_unit(db, unit.id, request.app[CLOCK]())
        board = await views.dashboard(db, unit.id, request.app[CLOCK]())
    grouped = {b.value: [a for a in items if a["bucket"] == b.value] for b in BUCKET_ORDER}
    return render(request, "directives.html", {**_ctx(), "unit": unit, "grouped": grouped,
                                               "overdue": len(grouped[Bucket.OPEN_OVERDUE]),
                                               "overdue_below": board["totals"][Bucket.OPEN_OVERDUE]})


@routes.get("/directives/dashboard")
async def dashboard_page(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    async with request.app[DB]() as db:
        unit = await units.get_by_code(db, request.query.get("unit", p.unit_code))
        await ensure_reaches(db, p, unit.id)
        board = await views.dashboard(db, unit.id, request.app[CLOCK]())
    return render(request, "directives_dashboard.html", {**_ctx(), "unit": unit, "board": board})


@routes.get("/directives/{directive_id:\\d+}")
async def directive_page(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    async with request.app[DB]() as db:
        tree = await views.directive_tree(db, path_id(request, "directive_id"), p.unit_id,
                                          request.app[CLOCK]())
    return render(request, "directive.html", {**_ctx(), "d": tree})


@routes.get("/assignments/{assignment_id:\\d+}")
async def assignment_page(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    async with request.app[DB]() as db:
        a = await views.assignment_detail(db, path_id(request, "assignment_id"), p.unit_id,
                                          request.app[CLOCK]())
    return render(request, "assignment.html", {**_ctx(), "a": a, "can_act": can_act(p)})
