"""The JSON API under /api/: errors are ``{"error": {"code", "message"}}`` with stable codes
(see docs/protocol.md). Every route checks who is asking and the subtree it may reach."""

from __future__ import annotations

from aiohttp import web

from server.http.contract import ADMIN, EVERY_SCOPE, api
from server.http.schemas import INT, LEVEL, ROLE, SCOPE, STR, TIME, array, nullable, obj, ref
from server.services import admin as admin_service
from server.services.access import ensure_reaches
from server.state import CLOCK, DB, DEPS, SETTINGS
from server.web_util import client_ip, json_body, path_id, require_principal
from sessions.errors import Forbidden, ValidationFailed
from sessions.roles import Permission, Principal
from sessions.store import audit, units
from sessions.store import auth as auth_store
from sessions.store import users as users_store
from sessions.units import Level

routes = web.RouteTableDef()


def _can_read_units(p: Principal) -> bool:
    return p.can(Permission.VIEW_UNITS) or p.has_scope("units:read")


def _need_units(p: Principal) -> None:
    if not _can_read_units(p):
        raise Forbidden("Bạn không có quyền xem đơn vị", code="forbidden")


@routes.get("/api/me")
@api(summary="Ai đang gọi: tài khoản hoặc mã truy cập, đơn vị và quyền", scopes=EVERY_SCOPE,
     response=obj({"kind": {"enum": ["user", "machine"]}, "name": STR, "role": nullable(ROLE), "scopes": array(SCOPE),
                   "unit": ref("Unit"), "permissions": array(STR)}))
async def me(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    async with request.app[DB]() as db:
        unit = await units.get_by_id(db, p.unit_id)
    return web.json_response({
        "kind": p.kind, "name": p.name, "role": p.role.value if p.role else None, "scopes": sorted(p.scopes),
        "unit": unit.as_dict(),
        "permissions": sorted(perm.value for perm in Permission if p.can(perm)),
    })


@routes.get("/api/units/{code}")
@api(summary="Một đơn vị trong phạm vi, số đơn vị theo cấp và các đơn vị trực thuộc", scopes={"units:read"},
     response=obj({"unit": ref("Unit"), "counts_by_level": {"type": "object", "additionalProperties": INT},
                   "children": array({"allOf": [ref("Unit"), obj({"units_below": INT})]})}))
async def unit_detail(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    _need_units(p)
    async with request.app[DB]() as db:
        unit = await units.get_by_code(db, request.match_info["code"])
        await ensure_reaches(db, p, unit.id)
        children = await units.children_with_counts(db, unit.id)
        counts = await units.count_by_level(db, unit.id)
    return web.json_response({
        "unit": unit.as_dict(), "counts_by_level": counts,
        "children": [{**c.as_dict(), "units_below": n} for c, n in children],
    })


@routes.get("/api/units/{code}/subtree")
@api(summary="Toàn bộ cây đơn vị dưới một đơn vị (lọc theo cấp)", scopes={"units:read"}, query={"level": LEVEL},
     response=obj({"unit": STR, "count": INT, "units": array(ref("Unit"))}))
async def unit_subtree(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    _need_units(p)
    level = None
    if raw := request.query.get("level"):
        try:
            level = Level(raw)
        except ValueError:
            raise ValidationFailed(f"Cấp '{raw}' không hợp lệ", code="level_invalid") from None
    async with request.app[DB]() as db:
        unit = await units.get_by_code(db, request.match_info["code"])
        await ensure_reaches(db, p, unit.id)
        rows = await units.subtree(db, unit.id, level)
    return web.json_response({"unit": unit.code, "count": len(rows), "units": [u.as_dict() for u in rows]})


@routes.get("/api/users")
@api(summary="Tài khoản trong phạm vi của quản trị viên", roles=ADMIN, response=obj({"users": array(ref("User"))}))
async def users_list(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    if not p.can(Permission.MANAGE_USERS):
        raise Forbidden("Bạn không có quyền quản lý tài khoản", code="forbidden")
    async with request.app[DB]() as db:
        people = await users_store.list_in_subtree(db, p.unit_id)
    return web.json_response({"users": [u.as_dict() for u in people]})


@routes.post("/api/users")
@api(summary="Tạo tài khoản", roles=ADMIN, status=201, errors={409},
     request=obj({k: STR for k in ("username", "full_name", "unit_code", "role", "password")}),
     response=obj({"user": ref("User")}))
async def users_create(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    body = await json_body(request)
    spec = admin_service.NewUser(**{k: str(body.get(k, "")) for k in ("username", "full_name", "unit_code", "role",
                                                                   "password")})
    user = await admin_service.create_user(request.app[DEPS], p, spec, client_ip(request))
    return web.json_response({"user": user.as_dict()}, status=201)


@routes.post("/api/users/{user_id:\\d+}/{action:lock|unlock}")
@api(summary="Khoá hoặc mở khoá tài khoản (khoá: đóng mọi phiên của tài khoản)", roles=ADMIN, response=ref("Ok"))
async def users_lock(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    await admin_service.set_user_active(request.app[DEPS], p, path_id(request, "user_id"),
                                    request.match_info["action"] == "unlock", client_ip(request))
    return web.json_response({"ok": True})


@routes.get("/api/tokens")
@api(summary="Mã truy cập máy trong phạm vi (không bao giờ có mã bí mật)", roles=ADMIN,
     response=obj({"tokens": array(ref("Token"))}))
async def tokens_list(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    if not p.can(Permission.MANAGE_TOKENS):
        raise Forbidden("Bạn không có quyền quản lý mã truy cập", code="forbidden")
    async with request.app[DB]() as db:
        tokens = await auth_store.list_tokens(db, p.unit_id)
    now = request.app[CLOCK]()
    return web.json_response({"tokens": [t.as_dict(now) for t in tokens]})


@routes.post("/api/tokens")
@api(summary="Cấp mã truy cập máy (mã chỉ hiện một lần)", roles=ADMIN, status=201,
     request=obj({"name": STR, "unit_code": STR, "scopes": array(SCOPE)}, {"days": INT}),
     response={"allOf": [ref("Token"), obj({"token": STR})]})
async def tokens_create(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    body = await json_body(request)
    scopes = body.get("scopes", [])
    days = body.get("days", 30)
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise ValidationFailed("'scopes' phải là danh sách chuỗi", code="token_scope_invalid")
    if not isinstance(days, int) or isinstance(days, bool):
        raise ValidationFailed("'days' phải là số nguyên", code="token_ttl_invalid")
    view, token = await admin_service.create_token(request.app[DEPS], p, name=str(body.get("name", "")),
                                               unit_code=str(body.get("unit_code", "")), scopes=frozenset(scopes),
                                               days=days, ip=client_ip(request))
    return web.json_response({"token": token, **view.as_dict(request.app[CLOCK]())}, status=201)


@routes.delete("/api/tokens/{token_id:\\d+}")
@api(summary="Thu hồi mã truy cập máy", roles=ADMIN, response=ref("Ok"))
async def tokens_revoke(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    await admin_service.revoke_token(request.app[DEPS], p, path_id(request, "token_id"), client_ip(request))
    return web.json_response({"ok": True})


@routes.post("/api/units/import")
@api(summary="Nhập cây đơn vị từ CSV (trong phạm vi, tất cả hoặc không)", roles=ADMIN, errors={413},
     request={"type": "string"}, request_type="text/csv", query={"filename": STR},
     response=obj({"added": INT, "updated": INT, "unchanged": INT}))
async def units_import(request: web.Request) -> web.StreamResponse:
    """Raw CSV body (Content-Type: text/csv), size-limited like the upload form."""
    p = require_principal(request)
    if not p.can(Permission.MANAGE_UNITS):  # before a byte of the file is read
        raise Forbidden("Bạn không có quyền nhập đơn vị", code="forbidden")
    limit = request.app[SETTINGS].max_upload_bytes
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    data = await request.content.read(limit + 1)
    if len(data) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(data))
    result = await admin_service.import_units_csv(request.app[DEPS], p, data, request.query.get("filename", "api.csv"),
                                              client_ip(request))
    return web.json_response({"added": result.added, "updated": result.updated, "unchanged": result.unchanged})


@routes.get("/api/audit")
@api(summary="Nhật ký thao tác trong phạm vi", roles=ADMIN,
     response=obj({"entries": array(obj({"at": TIME, "actor": STR, "actor_kind": STR, "action": STR}))}))
async def audit_list(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    if not p.can(Permission.VIEW_AUDIT):
        raise Forbidden("Bạn không có quyền xem nhật ký", code="forbidden")
    async with request.app[DB]() as db:
        entries = await audit.list_in_subtree(db, p.unit_id)
    return web.json_response({"entries": [
        {"at": e.at.isoformat(), "actor": e.actor_name, "actor_kind": e.actor_kind, "action": e.action,
         "target": e.target, "ip": e.ip, "detail": e.detail} for e in entries
    ]})
