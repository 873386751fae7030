"""KPI intake and read-out under /api/kpi/ (see docs/protocol.md): reports from source systems
(machine tokens with ``kpi:write``) and operators, always limited to the caller's subtree."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.db import transaction, transaction_rereading
from server.http import kpi_upload
from server.http.contract import EVERY_ROLE, api
from server.http.schemas import INT, STR, array, nullable, obj, ref
from server.services import kpi_slides, outbox
from server.services.access import actor_of, ensure_reaches
from server.services.kpi_slides import indicator_row
from server.state import CLOCK, DB, DEPS
from server.web_util import client_ip, json_body, json_error, render, require_permission, require_principal
from sessions.errors import Conflict, Forbidden, ValidationFailed
from sessions.roles import Permission, Principal, Role
from sessions.store import audit, kpi_catalog, units
from sessions.store import kpi as kpi_store
from sessions.store import kpi_slides as slide_store

routes = web.RouteTableDef()

REPORTING_PERMISSIONS = (Permission.OPERATE_SITE, Permission.OPERATE_BRIDGE, Permission.CHAIR_MEETINGS)


def can_report(p: Principal) -> bool:
    return p.has_scope("kpi:write") or p.role is Role.ADMIN or any(p.can(perm) for perm in REPORTING_PERMISSIONS)


def can_read(p: Principal) -> bool:
    """People who see units; source systems (``kpi:write``) read back their own subtree's figures."""
    return p.can(Permission.VIEW_UNITS) or p.has_scope("kpi:write")


@routes.post("/api/kpi/reports")
@api(summary="Gửi báo cáo chỉ tiêu (JSON; cả lô hoặc không gì)", scopes={"kpi:write"}, roles=EVERY_ROLE - {Role.VIEWER},
     errors={409}, response=ref("KpiCounts"),
     request=obj({"reports": array(obj({"report_id": STR, "unit": STR, "indicator": STR, "period": STR, "value": INT},
                                       {"denominator": nullable(INT)}))}))
async def kpi_reports(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    if not can_report(p):
        raise Forbidden("Bạn không có quyền gửi số liệu chỉ tiêu", code="forbidden")
    body = await json_body(request)
    reports = body.get("reports")
    if not isinstance(reports, list) or not reports:
        raise ValidationFailed("Cần danh sách 'reports' (ít nhất một báo cáo)", code="kpi_reports_required",
                               field="reports")
    ip = client_ip(request)
    async def store(db: AsyncSession) -> tuple[kpi_store.IngestResult, outbox.Staged]:
        result = await kpi_store.ingest(db, reports, p.unit_id, p.name, request.app[CLOCK]())
        await audit.record(db, actor_of(p), "kpi_reported", f"{len(reports)} báo cáo", ip,
                           accepted=result.accepted, duplicates=result.duplicates,
                           corrected=result.corrected, affected=len(result.affected))
        return result, await kpi_slides.stage(db, result.affected)  # the slides' events, with the change

    try:  # the same batch racing itself (two processes, a client's retry): re-read, then it is a duplicate
        result, staged = await transaction_rereading(request.app[DB], store)
    except kpi_store.KpiRejected as exc:
        async with transaction(request.app[DB]) as db:
            await audit.record(db, actor_of(p), "kpi_rejected", f"{len(reports)} báo cáo", ip, code=exc.code,
                               errors=len(exc.errors))
        return json_error(exc.status, exc.code, exc.message, errors=[e.as_dict() for e in exc.errors[:200]],
                          error_count=len(exc.errors))
    except IntegrityError:
        # Still racing after every re-read: nothing of this one was kept.
        raise Conflict("Báo cáo đang được gửi đồng thời từ nơi khác; hãy gửi lại", code="conflict") from None
    await outbox.deliver(request.app[DEPS], staged)  # after the commit: every reader sees what subscribers get
    return web.json_response(result.counts())


@routes.get("/api/kpi/{unit_code}")
@api(summary="Số liệu chỉ tiêu của một đơn vị trong phạm vi (kỳ hoặc cả chiến dịch)", scopes={"kpi:write"},
     query={"period": STR},
     response=obj({"unit": ref("Unit"), "period": STR,
                   "indicators": array(obj({"code": STR, "name": STR, "kind": STR, "has_data": {"type": "boolean"}}))}))
async def kpi_unit(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    if not can_read(p):
        raise Forbidden("Bạn không có quyền xem số liệu chỉ tiêu", code="forbidden")
    period = kpi_store.check_period(request.query.get("period", "campaign"))
    async with request.app[DB]() as db:
        unit = await units.get_by_code(db, request.match_info["unit_code"])
        await ensure_reaches(db, p, unit.id)
        siblings = await slide_store.sibling_ids(db, unit)
        values = await kpi_store.totals_of(db, siblings, period)
        catalog = await kpi_catalog.load(db)
        previous = (await slide_store.previous_meeting(db, [unit.id], period)).get(unit.id)
        trend = (await slide_store.monthly_trend(db, [unit.id])).get(unit.id)
    return web.json_response({
        "unit": unit.as_dict(), "period": period,
        "indicators": [indicator_row(i, values, unit.id, unit.level.value, siblings, previous, trend)
                       for i in catalog],
    })


@routes.get("/slides/{unit_code}")
async def slide_page(request: web.Request) -> web.StreamResponse:
    """A unit's live KPI slide (campaign to date): rendered from the data below, then kept current
    over the websocket topic ``kpi:<unit code>``."""
    p = require_permission(request, Permission.VIEW_UNITS)
    async with request.app[DB]() as db:
        unit = await units.get_by_code(db, request.match_info["unit_code"])
        await ensure_reaches(db, p, unit.id)
        data = (await kpi_slides.slides(db, [unit.id]))[unit.id]
    return render(request, "slides.html", {"unit": unit, "slide": data})


# CSV intake (server/http/kpi_upload.py): the operators' upload page and the scripts' text/csv API.

@routes.get("/kpi/upload")
async def kpi_upload_page(request: web.Request) -> web.StreamResponse:
    return await kpi_upload.upload_page(request)


@routes.post("/kpi/upload")
async def kpi_upload_submit(request: web.Request) -> web.StreamResponse:
    return await kpi_upload.upload_submit(request)


@routes.post("/api/kpi/reports.csv")
@api(summary="Gửi báo cáo chỉ tiêu (CSV; cả tệp hoặc không gì)", scopes={"kpi:write"}, roles=EVERY_ROLE - {Role.VIEWER},
     errors={409, 413, 415}, request={"type": "string"}, request_type="text/csv", query={"filename": STR},
     response=ref("KpiCounts"))
async def kpi_reports_csv(request: web.Request) -> web.StreamResponse:
    return await kpi_upload.api_reports_csv(request)
