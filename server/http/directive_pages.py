"""Directive pages (Vietnamese, server-rendered): my unit's assignments by bucket with the overdue
reminder ("Được giao") and the directives it gave and follows ("Theo dõi"), the dashboard (counts
per bucket per province with charts, kept current over ``directives:<code>``, each row opening
the directive trees cut to that province), its XLSX export, a directive with its cascade tree and
the meeting and minutes it came from, and an assignment with its reports and its history in
words. Changes go through the JSON API (``server/http/directives.py``) from small forms in
``web/static/directives.js``."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from server.exports import followup as followup_xlsx
from server.services.directives import can_act
from server.state import CLOCK, DB
from server.timefmt import local
from server.web_util import lang_of, path_id, render, require_principal
from sessions.directives import BUCKET_LABEL_VI, BUCKET_ORDER, Bucket
from sessions.errors import Forbidden, ValidationFailed
from sessions.roles import Principal
from sessions.store import directive_followup as followup
from sessions.store import directive_views as views
from sessions.store import units
from sessions.unit_tree import UnitView

routes = web.RouteTableDef()
VIEWS = ("assigned", "followed")  # the two tabs of /directives: "Được giao", "Theo dõi"


def number(value: int | float | None, lang: str = "vi", decimals: int = 0) -> str:
    """3.355 and 99,66 in Vietnamese; 3,355 and 99.66 in English; "—" for nothing."""
    if value is None:
        return "—"
    text = f"{value:,.{decimals}f}"
    return text.translate(str.maketrans(",.", ".,")) if lang == "vi" else text


def _ctx(request: web.Request) -> dict[str, object]:
    lang = lang_of(request)
    return {"buckets": [(b.value, BUCKET_LABEL_VI[b]) for b in BUCKET_ORDER], "local_iso": _local_iso,
            "num": lambda v, decimals=0: number(v, lang, decimals)}


def _local_iso(text: str | None, fmt: str = "%d/%m/%Y") -> str:
    return local(datetime.fromisoformat(text), fmt) if text else ""


async def unit_in_reach(db: AsyncSession, p: Principal, code: str | None) -> UnitView:
    """The unit ``?unit=`` names (default: the reader's own), refused clearly when it lies
    outside the reader's subtree; the refusal names only what the reader typed and its own unit."""
    if code is None or code == p.unit_code:
        return await units.get_by_code(db, p.unit_code)
    unit = await units.get_by_code(db, code)  # unknown code: 404 unit_not_found
    if not await units.is_within(db, p.unit_id, unit.id):
        own = await units.get_by_code(db, p.unit_code)
        raise Forbidden(f"Đơn vị mã '{code[:20]}' nằm ngoài phạm vi theo dõi của bạn; "
                        f"bạn chỉ xem được {own.name} và các đơn vị cấp dưới", code="out_of_scope", field="unit")
    return unit


@routes.get("/directives")
async def my_directives(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    view = request.query.get("view")
    if view is not None and view not in VIEWS:
        raise ValidationFailed("Chế độ xem không hợp lệ: chọn 'assigned' (được giao) hoặc 'followed' (theo dõi)",
                               code="view_invalid", field="view")
    now = request.app[CLOCK]()
    async with request.app[DB]() as db:
        unit = await unit_in_reach(db, p, request.query.get("unit"))
        items = await views.list_for_unit(db, unit.id, now)
        board = await views.dashboard(db, unit.id, now)
        given = await followup.followed(db, unit.id, now)
    if view is None:  # a unit that only gives tasks (the ministry) opens on what it follows
        view = "followed" if given and not items else "assigned"
    grouped = {b.value: [a for a in items if a["bucket"] == b.value] for b in BUCKET_ORDER}
    return render(request, "directives.html", {**_ctx(request), "unit": unit, "grouped": grouped, "view": view,
                                               "assigned_count": len(items), "followed": given,
                                               "overdue": len(grouped[Bucket.OPEN_OVERDUE]),
                                               "overdue_below": board["totals"][Bucket.OPEN_OVERDUE]})


@routes.get("/directives/dashboard")
async def dashboard_page(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    now = request.app[CLOCK]()
    async with request.app[DB]() as db:
        unit = await unit_in_reach(db, p, request.query.get("unit"))
        board = await views.dashboard(db, unit.id, now)
        trend = await followup.on_time_trend(db, unit.id, now)
    rates = {row["unit"]["code"]: followup_xlsx.on_time_rate(row["counts"]) for row in board["rows"]}
    return render(request, "directives_dashboard.html", {
        **_ctx(request), "unit": unit, "board": board, "trend": trend, "rates": rates,
        "total_rate": followup_xlsx.on_time_rate(board["totals"]),
        "chart_data": {"rows": board["rows"], "buckets": [b.value for b in BUCKET_ORDER], "trend": trend}})


@routes.get("/directives/tree")
async def trees_page(request: web.Request) -> web.StreamResponse:
    """Every directive cascade that reaches ``?unit=`` (a dashboard row), cut to its subtree."""
    p = require_principal(request)
    async with request.app[DB]() as db:
        unit = await unit_in_reach(db, p, request.query.get("unit"))
        trees, total = await followup.trees_within(db, p.unit_id, unit.id, request.app[CLOCK]())
    return render(request, "directive.html", {**_ctx(request), "trees": trees, "total": total, "within": unit,
                                              "origin": None})


@routes.get("/directives/followup.xlsx")
async def followup_export(request: web.Request) -> web.StreamResponse:
    """The dashboard's view as a spreadsheet: per province, per bucket, the overdue list."""
    p = require_principal(request)
    now = request.app[CLOCK]()
    async with request.app[DB]() as db:
        unit = await unit_in_reach(db, p, request.query.get("unit"))
        board = await views.dashboard(db, unit.id, now)
        late, late_total = await followup.overdue(db, unit.id, now)
        trend = await followup.on_time_trend(db, unit.id, now)
    data = followup_xlsx.to_xlsx(board, late, late_total, trend, now)
    name = f"theo-doi-nhiem-vu-{unit.code}-{local(now, '%Y%m%d')}.xlsx"
    return web.Response(body=data, headers={"Content-Type": followup_xlsx.XLSX, "Cache-Control": "no-store",
                                            "Content-Disposition": f'attachment; filename="{name}"'})


@routes.get("/directives/{directive_id:\\d+}")
async def directive_page(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    async with request.app[DB]() as db:
        tree = await views.directive_tree(db, path_id(request, "directive_id"), p.unit_id,
                                          request.app[CLOCK]())
        origin = await followup.origin(db, tree["meeting_id"], p.unit_id)
    return render(request, "directive.html", {**_ctx(request), "trees": [tree], "total": 1, "within": None,
                                              "origin": origin})


@routes.get("/assignments/{assignment_id:\\d+}")
async def assignment_page(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    async with request.app[DB]() as db:
        a = await views.assignment_detail(db, path_id(request, "assignment_id"), p.unit_id,
                                          request.app[CLOCK]())
    return render(request, "assignment.html", {**_ctx(request), "a": a, "can_act": can_act(p)})
