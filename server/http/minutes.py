"""Minutes of concluded meetings: the printable notice of conclusions (HTML), its PDF and DOCX,
the JSON, and corrections by the chair — each a new version, the published ones never changed.

Who reads: any account whose unit sees the meeting (it took part, chaired it, or is above a unit
that did: ``meeting_service.ensure_visible``). Who corrects: the meeting's chair. The chair also
names the presiding official and the signer before the conclusion (a form on the minutes page,
which before the conclusion shows only that form to the chair, and a JSON route). The sites
present are a download of their own (CSV/XLSX), not pages of the notice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web
from sqlalchemy.exc import IntegrityError

from server.db import transaction
from server.exports import attendance as attendance_export
from server.exports.minutes_html import minutes_context
from server.exports.minutes_pdf import render_pdf
from server.http.contract import CHAIR, api
from server.http.schemas import ID, INT, STR, array, obj
from server.services import meetings as meeting_service
from server.services.access import actor_of
from server.state import CLOCK, DB, EXPORTS
from server.web_util import client_ip, form_body, json_body, lang_of, path_id, query_id, render, require_principal
from sessions import minutes as doc_rules
from sessions.errors import Conflict, DomainError, Forbidden, NotFound, ValidationFailed
from sessions.minutes import Minutes, Presiding, presiding_of
from sessions.roles import Principal
from sessions.store import audit
from sessions.store import minutes as store

routes = web.RouteTableDef()
FORM_FIELDS = ("reason", "number", "title", "chair_name", "chair_title", "signer_authority", "signer_title",
               "signer_name", "recipients")
PRESIDING_FIELDS = ("title", "name", "signer_authority", "signer_title", "signer_name")
PRESENT_TYPES = {"csv": "text/csv", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def _meeting_id(request: web.Request) -> int:
    return path_id(request, "meeting_id")


def _version(request: web.Request) -> int | None:
    try:
        return query_id(request, "version")
    except ValidationFailed:
        raise ValidationFailed("Phiên bản biên bản phải là số nguyên dương", code="version_invalid",
                               field="version") from None


async def _read(request: web.Request) -> tuple[Principal, Minutes, list[dict[str, Any]], bool]:
    p = require_principal(request)
    if p.kind != "user":
        raise Forbidden("Biên bản chỉ dành cho tài khoản người dùng", code="forbidden")
    async with request.app[DB]() as db:
        meeting = await meeting_service.ensure_visible(db, p, _meeting_id(request))
        doc = await store.get(db, meeting.id, _version(request))
        history = await store.versions(db, meeting.id)
        chair = await meeting_service.is_chair_of(db, p, meeting)
    return p, doc, history, chair


@routes.get("/meetings/{meeting_id:\\d+}/minutes")
async def minutes_page(request: web.Request) -> web.StreamResponse:
    if request.query.get("version") is None and await _unpublished_for_chair(request):
        return await _presiding_page(request, saved=request.query.get("presiding") == "1")
    return await _page(request)


async def _unpublished_for_chair(request: web.Request) -> bool:
    """True when the meeting has no minutes yet and the caller chairs it: the page then shows the
    presiding-official form (anyone else still gets "no minutes yet")."""
    p = require_principal(request)
    async with request.app[DB]() as db:
        meeting = await meeting_service.ensure_visible(db, p, _meeting_id(request))
        return p.kind == "user" and not await store.latest_version(db, meeting.id) \
            and await meeting_service.is_chair_of(db, p, meeting)


async def _presiding_page(request: web.Request, *, error: str | None = None, form: dict[str, str] | None = None,
                          status: int = 200, saved: bool = False) -> web.StreamResponse:
    mid = _meeting_id(request)
    async with request.app[DB]() as db:
        meeting = await meeting_service.ensure_visible(db, require_principal(request), mid)
        named = await store.presiding(db, mid)
    kept = form or _presiding_form(named)
    return render(request, "minutes.html", {
        "doc": None, "meeting_title": meeting.title, "presiding_url": f"/meetings/{mid}/minutes/presiding",
        "presiding_form": kept, "presiding_error": error, "presiding_saved": saved}, status=status)


def _presiding_form(named: Presiding | None) -> dict[str, str]:
    if named is None:
        return dict.fromkeys(PRESIDING_FIELDS, "")
    return {"title": named.title, "name": named.name, "signer_authority": named.signer_authority,
            "signer_title": named.signer_title, "signer_name": named.signer_name}


async def _page(request: web.Request, *, error: str | None = None, form: dict[str, str] | None = None,
                status: int = 200) -> web.StreamResponse:
    _p, doc, history, chair = await _read(request)
    mid = _meeting_id(request)
    base = f"/meetings/{mid}/minutes"
    suffix = f"?version={doc.version}"
    versions = [(f"Phiên bản {v['version']}" + (f" (đính chính: {v['reason']})" if v["reason"] else ""),
                 "" if v["version"] == doc.version else f"{base}?version={v['version']}") for v in history]
    ctx = minutes_context(doc, lang=lang_of(request), pdf_url=f"{base}.pdf{suffix}",
                          docx_url=f"{base}.docx{suffix}", versions=versions)
    latest = history[-1]["version"] if history else doc.version
    signer = doc.signer
    kept = form or {"reason": "", "number": doc.number, "title": doc.title, "chair_name": doc.chair.name,
                    "chair_title": doc.chair.title, "signer_authority": signer.authority if signer else "",
                    "signer_title": signer.title if signer else "", "signer_name": signer.name if signer else "",
                    "recipients": "\n".join(doc.recipients)}
    ctx.update({"correct_url": f"{base}/corrections" if chair and doc.version == latest else "",
                "correction_error": error, "correction_form": kept,
                "present_csv_url": f"{base}/present.csv{suffix}", "present_xlsx_url": f"{base}/present.xlsx{suffix}"})
    return render(request, "minutes.html", ctx, status=status)


async def _export(request: web.Request, kind: str) -> web.StreamResponse:
    p = require_principal(request)
    if p.kind != "user":
        raise Forbidden("Biên bản chỉ dành cho tài khoản người dùng", code="forbidden")
    meeting_id, version = await _existing_version(request, p)

    async def make() -> bytes:
        async with request.app[DB]() as db:
            doc = await store.get(db, meeting_id, version)
        render: Callable[[Minutes], bytes]
        if kind == "pdf":
            render = render_pdf
        else:
            from server.exports.minutes_docx import render_docx  # python-docx (lxml) only when asked

            render = render_docx
        # CPU-bound (seconds for a national meeting): off the event loop.
        return await asyncio.get_running_loop().run_in_executor(None, render, doc)

    # A stored version never changes: its file, once rendered, is served from the cache (checked
    # for access above, on every request); a correction is a new version, rendered afresh.
    data = await request.app[EXPORTS].get((meeting_id, version, kind), make)
    name = f"bien-ban-hoi-nghi-{meeting_id}-v{version}.{kind}"
    ctype = "application/pdf" if kind == "pdf" else \
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    return web.Response(body=data, content_type=ctype,
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


async def _existing_version(request: web.Request, p: Principal) -> tuple[int, int]:
    """(meeting id, version) of a stored version the caller may read (default: the latest); a
    version that does not exist is refused before anything is rendered or cached."""
    asked = _version(request)
    async with request.app[DB]() as db:
        meeting = await meeting_service.ensure_visible(db, p, _meeting_id(request))
        latest = await store.latest_version(db, meeting.id)
    if not latest:
        raise NotFound("Hội nghị chưa có biên bản", code="minutes_not_found")
    if asked is not None and asked > latest:
        raise NotFound(f"Không có biên bản phiên bản {asked} (mới nhất: phiên bản {latest})",
                       code="minutes_not_found")
    return meeting.id, asked or latest


@routes.get("/meetings/{meeting_id:\\d+}/minutes/present.{fmt:(csv|xlsx)}")
async def minutes_present(request: web.Request) -> web.StreamResponse:
    """The sites present, as the version froze them: a download beside the notice (CSV/XLSX)."""
    p = require_principal(request)
    if p.kind != "user":
        raise Forbidden("Biên bản chỉ dành cho tài khoản người dùng", code="forbidden")
    fmt = request.match_info["fmt"]
    meeting_id, version = await _existing_version(request, p)

    async def make() -> bytes:
        async with request.app[DB]() as db:
            doc = await store.get(db, meeting_id, version)
        rows = attendance_export.present_rows(doc)
        if fmt == "csv":
            return attendance_export.present_csv(rows)
        return await asyncio.get_running_loop().run_in_executor(None, attendance_export.present_xlsx, doc.title, rows)

    data = await request.app[EXPORTS].get((meeting_id, version, f"present.{fmt}"), make)
    name = f"diem-cau-co-mat-{meeting_id}-v{version}.{fmt}"
    return web.Response(body=data, content_type=PRESENT_TYPES[fmt],
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


@routes.get("/meetings/{meeting_id:\\d+}/minutes.pdf")
async def minutes_pdf(request: web.Request) -> web.StreamResponse:
    return await _export(request, "pdf")


@routes.get("/meetings/{meeting_id:\\d+}/minutes.docx")
async def minutes_docx(request: web.Request) -> web.StreamResponse:
    return await _export(request, "docx")


def _form_changes(form: dict[str, str], doc: Minutes) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if form["number"].strip() != doc.number:
        changes["number"] = form["number"]
    if form["title"].strip() != doc.title:
        changes["title"] = form["title"]
    if (form["chair_name"].strip(), form["chair_title"].strip()) != (doc.chair.name, doc.chair.title):
        changes["chair"] = {"name": form["chair_name"], "title": form["chair_title"], "unit": doc.chair.unit}
    typed = tuple(form[k].strip() for k in ("signer_authority", "signer_title", "signer_name"))
    signer = doc.signer
    if typed != ((signer.authority, signer.title, signer.name) if signer else ("", "", "")):
        changes["signer"] = {"authority": typed[0], "title": typed[1], "name": typed[2]} if any(typed) else None
    recipients = tuple(line.strip() for line in form["recipients"].splitlines() if line.strip())
    if recipients != doc.recipients:
        changes["recipients"] = list(recipients)
    return changes


async def _correct(request: web.Request, p: Principal, changes: dict[str, Any], reason: str) -> Minutes:
    mid = _meeting_id(request)
    try:
        async with transaction(request.app[DB]) as db:
            meeting = await meeting_service.ensure_visible(db, p, mid)
            if not await meeting_service.is_chair_of(db, p, meeting):
                raise Forbidden("Chỉ chủ trì hội nghị được đính chính biên bản", code="chair_only")
            fixed = await store.correct(db, mid, changes, reason, request.app[CLOCK](), p.name)
            await audit.record(db, actor_of(p), "minutes_corrected", f"meeting:{mid}", client_ip(request),
                               version=fixed.version, reason=fixed.correction_reason)
    except IntegrityError:
        raise Conflict("Biên bản vừa được đính chính ở nơi khác; hãy tải lại trang", code="conflict") from None
    return fixed


async def _set_presiding(request: web.Request, p: Principal, data: dict[str, Any]) -> Presiding:
    mid = _meeting_id(request)
    async with transaction(request.app[DB]) as db:
        await meeting_service.ensure_chair(db, p, mid)  # the meeting's host only
        who = presiding_of(data)  # refused (nothing stored) before anything is written
        await store.set_presiding(db, mid, who)
        await audit.record(db, actor_of(p), "presiding_set", f"meeting:{mid}", client_ip(request),
                           title=who.title, name=who.name, signer=who.signer_name)
    return who


@routes.post("/meetings/{meeting_id:\\d+}/minutes/presiding")
async def minutes_presiding_form(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    posted = await form_body(request)
    form = {k: str(posted.get(k, "")) for k in PRESIDING_FIELDS}
    try:
        await _set_presiding(request, p, form)
    except DomainError as exc:
        if exc.status in (401, 403, 404):
            raise
        return await _presiding_page(request, error=exc.message, form=form, status=exc.status)
    raise web.HTTPSeeOther(f"/meetings/{_meeting_id(request)}/minutes?presiding=1")


@routes.put("/api/meetings/{meeting_id:\\d+}/presiding")
@api(summary="Người chủ trì hội nghị và người ký thông báo kết luận (trước khi công bố biên bản)", roles=CHAIR,
     errors={409}, request=obj({"title": STR, "name": STR}, {"signer_authority": STR, "signer_title": STR,
                                                             "signer_name": STR}, closed=True),
     response=obj({"title": STR, "name": STR, "signer_authority": STR, "signer_title": STR, "signer_name": STR}))
async def api_presiding(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    body = await json_body(request)
    who = await _set_presiding(request, p, body)
    return web.json_response(_presiding_form(who))


@routes.post("/meetings/{meeting_id:\\d+}/minutes/corrections")
async def minutes_correct_form(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    posted = await form_body(request)
    form = {k: str(posted.get(k, "")) for k in FORM_FIELDS}
    async with request.app[DB]() as db:
        await meeting_service.ensure_visible(db, p, _meeting_id(request))
        current = await store.get(db, _meeting_id(request))
    try:
        fixed = await _correct(request, p, _form_changes(form, current), form["reason"])
    except DomainError as exc:
        if exc.status in (401, 404):
            raise
        return await _page(request, error=exc.message, form=form, status=exc.status)
    raise web.HTTPSeeOther(f"/meetings/{_meeting_id(request)}/minutes?version={fixed.version}")


@routes.get("/api/meetings/{meeting_id:\\d+}/minutes")
@api(summary="Biên bản (thông báo kết luận) của hội nghị đã kết thúc, theo phiên bản", query={"version": ID},
     errors={409}, response=obj({"version": INT, "hash": STR, "versions": array({"type": "object"}),
                                 "minutes": {"type": "object"}}))
async def api_minutes(request: web.Request) -> web.StreamResponse:
    _p, doc, history, _chair = await _read(request)
    return web.json_response({"version": doc.version, "hash": doc_rules.content_hash(doc), "versions": history,
                              "minutes": doc_rules.to_dict(doc)})


@routes.post("/api/meetings/{meeting_id:\\d+}/minutes/corrections")
@api(summary="Đính chính biên bản (tạo phiên bản mới)", roles=CHAIR, status=201, errors={409},
     request=obj({"changes": {"type": "object"}}, {"reason": STR}), response=obj({"version": INT, "hash": STR}))
async def api_minutes_correct(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    body = await json_body(request)
    changes = body.get("changes")
    if not isinstance(changes, dict):
        raise ValidationFailed("Cần 'changes' (các trường đính chính)", code="no_changes", field="changes")
    fixed = await _correct(request, p, changes, str(body.get("reason") or ""))
    return web.json_response({"version": fixed.version, "hash": doc_rules.content_hash(fixed)}, status=201)
