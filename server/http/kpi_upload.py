"""KPI reports from a CSV file: the operators' upload page (``/kpi/upload``) and the scripts' raw
``text/csv`` API (``POST /api/kpi/reports.csv``). Parsing is ``sessions.kpi_csv``; storage is
``sessions.store.kpi.ingest`` within the uploader's subtree, all or nothing."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.db import transaction, transaction_rereading
from server.services import kpi_slides, outbox
from server.services.access import actor_of
from server.state import CLOCK, DB, DEPS, SETTINGS
from server.web_util import client_ip, form_body, json_error, render, require_principal
from sessions.errors import Conflict, DomainError, Forbidden
from sessions.kpi_csv import CSV_COLUMNS, KpiCsvRejected, parse_kpi_csv
from sessions.roles import Permission, Principal, Role
from sessions.store import audit
from sessions.store import kpi as kpi_store

TEMPLATE = "kpi_upload.html"
MAX_SHOWN = 200  # errors listed on the page / in the JSON answer (the count is always complete)
UPLOADERS = (Permission.OPERATE_SITE, Permission.OPERATE_BRIDGE, Permission.CHAIR_MEETINGS)


def can_upload(p: Principal) -> bool:
    """People who report figures: site and bridge operators, chairs, admins; scripts with kpi:write."""
    return p.has_scope("kpi:write") or p.role is Role.ADMIN or any(p.can(perm) for perm in UPLOADERS)


async def ingest_csv(request: web.Request, p: Principal, data: bytes, source: str) -> kpi_store.IngestResult:
    """Parse and store one file; raises KpiCsvRejected, KpiRejected or another DomainError."""
    ip = client_ip(request)
    try:
        parsed = parse_kpi_csv(data)
    except KpiCsvRejected as exc:
        async with transaction(request.app[DB]) as db:
            await audit.record(db, actor_of(p), "kpi_rejected", source, ip, code=exc.code, errors=len(exc.problems))
        raise
    async def store(db: AsyncSession) -> tuple[kpi_store.IngestResult, outbox.Staged]:
        result = await kpi_store.ingest(db, parsed.reports, p.unit_id, p.name, request.app[CLOCK](),
                                        lines=parsed.lines)
        await audit.record(db, actor_of(p), "kpi_reported", f"{source}: {len(parsed.reports)} báo cáo", ip,
                           accepted=result.accepted, duplicates=result.duplicates,
                           corrected=result.corrected, affected=len(result.affected))
        return result, await kpi_slides.stage(db, result.affected)  # the slides' events, with the change

    try:  # racing the same reports sent elsewhere: re-read, as the JSON intake
        result, staged = await transaction_rereading(request.app[DB], store)
    except kpi_store.KpiRejected as exc:
        async with transaction(request.app[DB]) as db:
            await audit.record(db, actor_of(p), "kpi_rejected", f"{source}: {len(parsed.reports)} báo cáo", ip,
                               code=exc.code, errors=len(exc.errors))
        raise
    except IntegrityError:
        raise Conflict("Báo cáo đang được gửi đồng thời từ nơi khác; hãy gửi lại", code="conflict") from None
    await outbox.deliver(request.app[DEPS], staged)  # after the commit: every reader sees what subscribers get
    return result


def _page(request: web.Request, *, result: dict[str, int] | None = None, message: str | None = None,
          errors: list[dict[str, Any]] | None = None, error_count: int = 0, status: int = 200) -> web.Response:
    return render(request, TEMPLATE, {
        "result": result, "message": message, "errors": (errors or [])[:MAX_SHOWN], "error_count": error_count,
        "columns": ",".join(CSV_COLUMNS), "max_bytes": request.app[SETTINGS].max_upload_bytes,
    }, status=status)


def _too_large(limit: int) -> str:
    return f"Tệp quá lớn: giới hạn là {limit:,} byte; hãy chia thành nhiều tệp nhỏ hơn".replace(",", ".")


def _require_uploader(request: web.Request) -> Principal:
    p = require_principal(request)
    if not can_upload(p):
        raise web.HTTPForbidden()
    return p


async def upload_page(request: web.Request) -> web.StreamResponse:
    _require_uploader(request)
    return _page(request)


async def upload_submit(request: web.Request) -> web.StreamResponse:
    p = _require_uploader(request)
    limit = request.app[SETTINGS].max_upload_bytes
    try:
        form = await form_body(request)
    except web.HTTPRequestEntityTooLarge:
        return _page(request, message=_too_large(limit), status=413)
    upload = form.get("file")
    if not isinstance(upload, web.FileField) or not upload.filename:
        return _page(request, message="Chưa chọn tệp CSV", status=400)
    data = upload.file.read(limit + 1)
    if len(data) > limit:  # aiohttp's own body limit leaves room for the form's other fields
        return _page(request, message=_too_large(limit), status=413)
    try:
        result = await ingest_csv(request, p, data, upload.filename[:100])
    except KpiCsvRejected as exc:
        return _page(request, message="Tệp bị từ chối, không báo cáo nào được ghi",
                     errors=[x.as_dict() for x in exc.problems], error_count=len(exc.problems), status=400)
    except kpi_store.KpiRejected as exc:
        return _page(request, message="Tệp bị từ chối, không báo cáo nào được ghi",
                     errors=[e.as_dict() for e in exc.errors], error_count=len(exc.errors), status=exc.status)
    except DomainError as exc:
        return _page(request, message=exc.message, status=exc.status)
    return _page(request, result=result.counts())


async def api_reports_csv(request: web.Request) -> web.StreamResponse:
    """Raw CSV body (Content-Type: text/csv), size-limited like the upload form."""
    p = require_principal(request)
    if not can_upload(p):
        raise Forbidden("Bạn không có quyền gửi số liệu chỉ tiêu", code="forbidden")
    if request.content_type != "text/csv":
        return json_error(415, "csv_required", "Cần gửi CSV (Content-Type: text/csv)")
    limit = request.app[SETTINGS].max_upload_bytes
    if request.content_length is not None and request.content_length > limit:
        return json_error(413, "payload_too_large", _too_large(limit))
    data = bytearray()
    while len(data) <= limit and (chunk := await request.content.read(limit + 1 - len(data))):
        data += chunk
    if len(data) > limit:
        return json_error(413, "payload_too_large", _too_large(limit))
    try:
        result = await ingest_csv(request, p, bytes(data), request.query.get("filename", "api.csv")[:100])
    except KpiCsvRejected as exc:
        return json_error(400, exc.code, exc.message, errors=[x.as_dict() for x in exc.problems[:MAX_SHOWN]],
                          error_count=len(exc.problems))
    except kpi_store.KpiRejected as exc:
        return json_error(exc.status, exc.code, exc.message, errors=[e.as_dict() for e in exc.errors[:MAX_SHOWN]],
                          error_count=len(exc.errors))
    return web.json_response(result.counts())
