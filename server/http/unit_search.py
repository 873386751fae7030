"""Unit pickers' search: units by name (or code) within a unit the asker reaches, each with the
province it lies in, so two communes of the same name in different provinces can be told apart."""

from __future__ import annotations

from aiohttp import web

from server.http.contract import api
from server.http.schemas import INT, LEVEL, STR, array, nullable, obj, ref
from server.services.access import ensure_reaches
from server.state import DB
from server.web_util import require_principal
from sessions import unit_search
from sessions.errors import Forbidden, ValidationFailed
from sessions.roles import Permission
from sessions.store import units
from sessions.unit_tree import UnitView
from sessions.units import Level

routes = web.RouteTableDef()
MAX_LIMIT = 50

FOUND = {"allOf": [ref("Unit"), obj({"province": nullable(obj({"code": STR, "name": STR}))})]}


def _levels(raw: list[str]) -> frozenset[Level] | None:
    if not raw:
        return None
    try:
        return frozenset(Level(v) for part in raw for v in part.split(",") if v)
    except ValueError:
        raise ValidationFailed("Cấp đơn vị không hợp lệ (province, district, commune)", code="level_invalid",
                               field="level") from None


def _limit(raw: str | None) -> int:
    if raw is None:
        return 20
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ValidationFailed(f"'limit' phải là số từ 1 đến {MAX_LIMIT}", code="bad_request", field="limit")
    return int(raw)


@routes.get("/api/units/{code}/search")
@api(summary="Tìm đơn vị theo tên hoặc mã trong phạm vi (bộ chọn đơn vị)", scopes={"units:read"},
     query={"q": STR, "level": LEVEL, "limit": INT},
     response=obj({"query": STR, "count": INT, "units": array(FOUND)}))
async def unit_search_api(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    if not (p.can(Permission.VIEW_UNITS) or p.has_scope("units:read")):
        raise Forbidden("Bạn không có quyền xem đơn vị", code="forbidden")
    query = request.query.get("q", "")
    if len(query) > unit_search.MAX_QUERY:
        raise ValidationFailed(f"Từ khoá tìm kiếm dài quá {unit_search.MAX_QUERY} ký tự", code="query_too_long",
                               field="q")
    levels = _levels(request.query.getall("level", []))
    limit = _limit(request.query.get("limit"))
    async with request.app[DB]() as db:
        unit = await units.get_by_code(db, request.match_info["code"])
        await ensure_reaches(db, p, unit.id)
        tree = await units.unit_tree(db)
        below = await units.subtree(db, unit.id)

    def province_of(u: UnitView) -> UnitView | None:
        node: UnitView | None = u
        while node is not None and node.level.rank > Level.PROVINCE.rank:
            node = tree.get(node.parent_id) if node.parent_id is not None else None
        return node if node is not None and node.level is Level.PROVINCE else None

    found = unit_search.search(below, query, province_of=province_of, levels=levels, limit=limit)
    return web.json_response({"query": query, "count": len(found), "units": [f.as_dict() for f in found]})
