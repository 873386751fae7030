"""Home page and the unit browser (scoped to the principal's subtree)."""

from __future__ import annotations

from aiohttp import web

from server.services.access import ensure_reaches
from server.state import DB
from server.web_util import render, require_permission, require_principal
from sessions.roles import ROLE_CAPABILITIES, Permission, Role
from sessions.store import units

routes = web.RouteTableDef()


@routes.get("/", name="home")
async def home(request: web.Request) -> web.StreamResponse:
    principal = require_principal(request)
    async with request.app[DB]() as db:
        unit = await units.get_by_id(db, principal.unit_id)
        counts = await units.count_by_level(db, unit.id)
        children = await units.children_with_counts(db, unit.id) if principal.can(Permission.VIEW_UNITS) else []
    below = sum(counts.values()) - 1
    return render(request, "home.html", {
        "unit": unit, "counts": counts, "below": below, "children": children,
        "capabilities": ROLE_CAPABILITIES[principal.role or Role.VIEWER],
    })


@routes.get("/units/{code}", name="unit")
async def unit_page(request: web.Request) -> web.StreamResponse:
    principal = require_permission(request, Permission.VIEW_UNITS)
    async with request.app[DB]() as db:
        unit = await units.get_by_code(db, request.match_info["code"])
        await ensure_reaches(db, principal, unit.id)
        chain = await units.ancestors(db, unit.id)
        children = await units.children_with_counts(db, unit.id)
        counts = await units.count_by_level(db, unit.id)
    # Breadcrumbs start at the principal's own unit: nothing above it is shown.
    ids = [u.id for u in chain]
    crumbs = chain[ids.index(principal.unit_id):] if principal.unit_id in ids else [unit]
    return render(request, "unit.html", {"unit": unit, "crumbs": crumbs, "children": children, "counts": counts})
