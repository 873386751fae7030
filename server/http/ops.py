"""Operations: health and Prometheus metrics (public, no secrets in either)."""

from __future__ import annotations

import logging

from aiohttp import web

from server.db import ping
from server.state import DB, METRICS

routes = web.RouteTableDef()
log = logging.getLogger("hoinghi.ops")


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.StreamResponse:
    try:
        async with request.app[DB]() as db:
            await ping(db)
    except Exception as exc:  # the point of a health check is to say so, not to raise
        log.warning("health check failed", extra={"error": type(exc).__name__})
        return web.json_response({"status": "error", "database": "unreachable"}, status=503)
    return web.json_response({"status": "ok", "database": "ok"})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.StreamResponse:
    m = request.app[METRICS]
    return web.Response(body=m.render(), headers={"Content-Type": m.content_type})
