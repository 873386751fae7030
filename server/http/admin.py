"""Admin pages: accounts, machine tokens, unit import, KPI indicators, audit log (all scoped)."""

from __future__ import annotations

from aiohttp import web

from server.db import transaction
from server.i18n import translator
from server.services import admin as admin_service
from server.services.access import MACHINE_SCOPES, actor_of
from server.state import CLOCK, DB, DEPS, SETTINGS
from server.web_util import client_ip, form_body, lang_of, parse_id, path_id, render, require_permission
from sessions.errors import DomainError, Forbidden, ImportRejected, ValidationFailed
from sessions.kpi import BUILTIN, LEVELS, PERIODS, SPEC_FIELDS
from sessions.kpi_csv import parse_indicator_csv
from sessions.roles import ASSIGNABLE_ROLES, Permission, Principal
from sessions.store import audit, kpi_catalog, units
from sessions.store import auth as auth_store
from sessions.store import users as users_store

routes = web.RouteTableDef()


async def _users_page(request: web.Request, *, error: str | None = None, notice: str | None = None,
                      form: dict[str, str] | None = None, status: int = 200) -> web.StreamResponse:
    principal = require_permission(request, Permission.MANAGE_USERS)
    async with request.app[DB]() as db:
        people = await users_store.list_in_subtree(db, principal.unit_id)
    return render(request, "admin_users.html", {"users": people, "roles": ASSIGNABLE_ROLES, "error": error,
                                                "notice": notice, "form": form or {}}, status=status)


@routes.get("/admin/users")
async def users_page(request: web.Request) -> web.StreamResponse:
    return await _users_page(request)


@routes.post("/admin/users")
async def users_create(request: web.Request) -> web.StreamResponse:
    principal = require_permission(request, Permission.MANAGE_USERS)
    form = await form_body(request)
    fields = {k: str(form.get(k, "")) for k in ("username", "full_name", "unit_code", "role", "password")}
    spec = admin_service.NewUser(**fields)
    try:
        user = await admin_service.create_user(request.app[DEPS], principal, spec, client_ip(request))
    except DomainError as exc:
        # Keep what was typed (except the password) so nothing the user entered is lost.
        kept = {k: v for k, v in fields.items() if k != "password"}
        return await _users_page(request, error=exc.message, form=kept, status=exc.status)
    t = translator(lang_of(request))
    return await _users_page(request, notice=t("users.created", username=user.username))


@routes.post("/admin/users/{user_id:\\d+}/{action:lock|unlock}")
async def users_lock(request: web.Request) -> web.StreamResponse:
    principal = require_permission(request, Permission.MANAGE_USERS)
    active = request.match_info["action"] == "unlock"
    try:
        await admin_service.set_user_active(request.app[DEPS], principal, path_id(request, "user_id"), active,
                                        client_ip(request))
    except DomainError as exc:
        return await _users_page(request, error=exc.message, status=exc.status)
    raise web.HTTPSeeOther("/admin/users")


async def _tokens_page(request: web.Request, *, error: str | None = None, new_token: str | None = None,
                       form: dict[str, str] | None = None, status: int = 200) -> web.StreamResponse:
    principal = require_permission(request, Permission.MANAGE_TOKENS)
    async with request.app[DB]() as db:
        tokens = await auth_store.list_tokens(db, principal.unit_id)
    return render(request, "admin_tokens.html", {
        "tokens": tokens, "now": request.app[CLOCK](), "scopes": MACHINE_SCOPES, "error": error,
        "new_token": new_token, "form": form or {}, "max_days": request.app[SETTINGS].machine_token_max_days,
    }, status=status)


@routes.get("/admin/tokens")
async def tokens_page(request: web.Request) -> web.StreamResponse:
    return await _tokens_page(request)


@routes.post("/admin/tokens")
async def tokens_create(request: web.Request) -> web.StreamResponse:
    principal = require_permission(request, Permission.MANAGE_TOKENS)
    form = await form_body(request)
    kept = {k: str(form.get(k, "")) for k in ("name", "unit_code", "days")}
    scopes = frozenset(str(s) for s in form.getall("scopes", []))
    try:
        days = parse_id(kept["days"].strip() or "30", "days")
    except ValidationFailed:
        return await _tokens_page(request, error="Số ngày hiệu lực phải là số nguyên", form=kept, status=400)
    try:
        _view, token = await admin_service.create_token(request.app[DEPS], principal, name=kept["name"],
                                                    unit_code=kept["unit_code"], scopes=scopes, days=days,
                                                    ip=client_ip(request))
    except DomainError as exc:
        return await _tokens_page(request, error=exc.message, form=kept, status=exc.status)
    return await _tokens_page(request, new_token=token)


@routes.post("/admin/tokens/{token_id:\\d+}/revoke")
async def tokens_revoke(request: web.Request) -> web.StreamResponse:
    principal = require_permission(request, Permission.MANAGE_TOKENS)
    try:
        await admin_service.revoke_token(request.app[DEPS], principal, path_id(request, "token_id"),
                                     client_ip(request))
    except DomainError as exc:
        return await _tokens_page(request, error=exc.message, status=exc.status)
    raise web.HTTPSeeOther("/admin/tokens")


@routes.get("/admin/units/import")
async def import_page(request: web.Request) -> web.StreamResponse:
    require_permission(request, Permission.MANAGE_UNITS)
    return render(request, "admin_import.html", {"result": None, "errors": None,
                                                 "max_bytes": request.app[SETTINGS].max_upload_bytes})


@routes.post("/admin/units/import")
async def import_submit(request: web.Request) -> web.StreamResponse:
    principal = require_permission(request, Permission.MANAGE_UNITS)
    form = await form_body(request)
    upload = form.get("file")
    ctx: dict[str, object] = {"result": None, "errors": None, "max_bytes": request.app[SETTINGS].max_upload_bytes}
    if not isinstance(upload, web.FileField) or not upload.filename:
        ctx["errors"] = [(0, "Chưa chọn tệp CSV")]
        return render(request, "admin_import.html", ctx, status=400)
    data = upload.file.read()
    limit = request.app[SETTINGS].max_upload_bytes
    if len(data) > limit:  # aiohttp's own body limit leaves room for the form's other fields
        ctx["errors"] = [(0, f"Tệp quá lớn ({len(data)} byte); giới hạn là {limit} byte")]
        return render(request, "admin_import.html", ctx, status=413)
    try:
        ctx["result"] = await admin_service.import_units_csv(request.app[DEPS], principal, data, upload.filename,
                                                         client_ip(request))
    except ImportRejected as exc:
        ctx["errors"] = exc.errors
        return render(request, "admin_import.html", ctx, status=400)
    except DomainError as exc:
        ctx["errors"] = [(0, exc.message)]
        return render(request, "admin_import.html", ctx, status=exc.status)
    return render(request, "admin_import.html", ctx)


@routes.get("/admin/audit")
async def audit_page(request: web.Request) -> web.StreamResponse:
    principal = require_permission(request, Permission.VIEW_AUDIT)
    async with request.app[DB]() as db:
        entries = await audit.list_in_subtree(db, principal.unit_id)
        unit = await units.get_by_id(db, principal.unit_id)
    return render(request, "admin_audit.html", {"entries": entries, "unit": unit})


# The KPI catalog: built-in Đề án 06 indicators plus those added here (one at a time, or a CSV file).
# The catalog is national, so only an admin of a top unit (the ministry) may add to it.

async def _catalog_admin(request: web.Request) -> Principal:
    principal = require_permission(request, Permission.MANAGE_UNITS)
    async with request.app[DB]() as db:
        unit = await units.get_by_id(db, principal.unit_id)
    if unit.parent_id is not None:
        raise Forbidden("Chỉ quản trị viên cấp Bộ được thêm chỉ tiêu vào danh mục dùng chung",
                        code="forbidden")
    return principal


async def _indicators_page(request: web.Request, *, error: str | None = None, notice: str | None = None,
                           form: dict[str, str] | None = None, status: int = 200) -> web.StreamResponse:
    await _catalog_admin(request)
    async with request.app[DB]() as db:
        catalog = await kpi_catalog.load(db)
    return render(request, "admin_indicators.html", {
        "catalog": catalog, "builtin": BUILTIN, "error": error, "notice": notice,
        "form": {k: "" for k in SPEC_FIELDS} | (form or {}),
        "fields": SPEC_FIELDS, "levels": LEVELS, "periods": PERIODS,
        "max_bytes": request.app[SETTINGS].max_upload_bytes}, status=status)


async def _add_indicators(request: web.Request, principal: Principal, specs: list[dict[str, str]],
                          lines: list[int] | None, source: str) -> list[str]:
    async with transaction(request.app[DB]) as db:
        user_id = principal.id if principal.kind == "user" else None
        made = await kpi_catalog.add(db, specs, request.app[CLOCK](), user_id, lines)
        await audit.record(db, actor_of(principal), "kpi_indicator_added", source, client_ip(request),
                           codes=[i.code for i in made])
    return [i.code for i in made]


@routes.get("/admin/indicators")
async def indicators_page(request: web.Request) -> web.StreamResponse:
    return await _indicators_page(request)


@routes.post("/admin/indicators")
async def indicators_add(request: web.Request) -> web.StreamResponse:
    principal = await _catalog_admin(request)
    form = await form_body(request)
    fields = {k: str(form.get(k, "")) for k in SPEC_FIELDS}
    try:
        codes = await _add_indicators(request, principal, [fields], None, "biểu mẫu")
    except DomainError as exc:
        return await _indicators_page(request, error=exc.message, form=fields, status=exc.status)
    t = translator(lang_of(request))
    return await _indicators_page(request, notice=t("indicators.added_one", code=codes[0]))


@routes.post("/admin/indicators/upload")
async def indicators_upload(request: web.Request) -> web.StreamResponse:
    principal = await _catalog_admin(request)
    form = await form_body(request)
    upload = form.get("file")
    t = translator(lang_of(request))
    if not isinstance(upload, web.FileField) or not upload.filename:
        return await _indicators_page(request, error=t("indicators.csv.no_file"), status=400)
    data = upload.file.read()
    limit = request.app[SETTINGS].max_upload_bytes
    if len(data) > limit:
        return await _indicators_page(request, error=t("indicators.csv.too_large", size=len(data), limit=limit),
                                      status=413)
    try:
        specs, lines = parse_indicator_csv(data)
        codes = await _add_indicators(request, principal, specs, lines, f"tệp {upload.filename}")
    except DomainError as exc:
        return await _indicators_page(request, error=exc.message, status=exc.status)
    return await _indicators_page(request, notice=t("indicators.added_many", n=len(codes), codes=", ".join(codes)))
