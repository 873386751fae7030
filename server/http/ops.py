"""Operations: health and Prometheus metrics (public, no secrets in either)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from aiohttp import web

from server.db import ping
from server.live.bus import LocalBus
from server.state import BUS, DB, METRICS

routes = web.RouteTableDef()
log = logging.getLogger("hoinghi.ops")


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.StreamResponse:
    """200 while the database answers — with ``degraded`` when the bus (Redis) does not: requests
    still work, live events between processes wait — and 503 when the database does not."""
    database = "ok" if await _answers("database", _ping_database(request.app)) else "down"
    bus = request.app[BUS]
    if isinstance(bus, LocalBus):
        bus_state = "local"  # one process, no Redis: nothing to reach
    else:
        bus_state = "ok" if await _answers("bus", bus.publish(HEALTH_TOPIC, b"")) else "down"
    ok = database == "ok"
    degraded = ok and bus_state == "down"
    return web.json_response({"ok": ok, "status": "degraded" if degraded else "ok" if ok else "error",
                              "degraded": degraded, "database": database, "bus": bus_state},
                             status=200 if ok else 503)


HEALTH_TOPIC = "health.check"  # nobody subscribes: publishing it proves the bus takes messages
CHECK_SECONDS = 3.0


async def _ping_database(app: web.Application) -> None:
    async with app[DB]() as db:
        await ping(db)


async def _answers(what: str, check: Awaitable[None]) -> bool:
    try:
        await asyncio.wait_for(check, CHECK_SECONDS)
    except Exception as exc:  # the point of a health check is to say so, not to raise
        log.warning("health check failed", extra={"dependency": what, "error": type(exc).__name__})
        return False
    return True


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.StreamResponse:
    m = request.app[METRICS]
    return web.Response(body=m.render(), headers={"Content-Type": m.content_type})
