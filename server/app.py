"""The aiohttp application: wiring only (settings, database, templates, middlewares, routes)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from functools import partial
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from server import auth, db, numbers, security_headers
from server.batching import Coalescer
from server.errors import error_middleware
from server.exports.cache import ExportCache
from server.http import (
    account,
    admin,
    api,
    directive_pages,
    directives,
    kpi,
    meetings,
    minutes,
    openapi,
    ops,
    pages,
    recordings,
    unit_search,
)
from server.http.contract import scope_middleware
from server.live import credentials, leases
from server.live import socket as live_socket
from server.live.bus import RESUMED, make_bus
from server.live.hub import Hub
from server.live.presence import Presence
from server.live.resync import Resync
from server.live.topics import meeting_snapshots
from server.metrics import Metrics
from server.outage import AfterCommitBus
from server.services import meetings as meeting_service
from server.services import outbox, reminders
from server.services.deps import Deps
from server.settings import Settings
from server.state import (
    BUS,
    CLOCK,
    DB,
    DEPS,
    ENGINE,
    EXPORTS,
    HUB,
    INSTANCE,
    METRICS,
    PRESENCE,
    SETTINGS,
    SIGNING_KEY,
    SNAPSHOTS,
    TOKEN_CHECKS,
)
from server.web_util import MAX_FORM_FIELDS, principal_of
from sessions.models import utcnow

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
access_log = logging.getLogger("hoinghi.access")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def observe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Access log line and Prometheus counters per request (security headers: ``security_headers``)."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        elapsed = time.perf_counter() - started
        info = request.match_info.route.resource
        route = info.canonical if info is not None else "unmatched"
        metrics = request.app[METRICS]
        metrics.requests.labels(request.method, route, str(status)).inc()
        metrics.latency.labels(route).observe(elapsed)
        p = principal_of(request)
        access_log.info("request", extra={"method": request.method, "path": request.path, "status": status,
                                          "ms": round(elapsed * 1000, 1), "who": p.name if p else "-"})


def create_app(settings: Settings, clock: Callable[[], datetime] = utcnow, migrate: bool = True) -> web.Application:
    app = web.Application(
        middlewares=[observe_middleware, error_middleware, auth.auth_middleware, scope_middleware],
        client_max_size=settings.max_upload_bytes + 64 * 1024,  # attachments stream past it
        client_max_fields=MAX_FORM_FIELDS,  # more fields than any form of ours has: 413
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock
    security_headers.install(app, settings)
    app[METRICS] = metrics = Metrics()
    app[EXPORTS] = ExportCache(on_event=lambda key, outcome: metrics.exports.labels(str(key[-1]), outcome).inc())
    app[SIGNING_KEY] = settings.signing_key()
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(WEB_DIR / "templates")),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        filters={"vn_number": numbers.number_filter, "vn_percent": numbers.percent_filter},  # 3.355 · 99,66 %
    )

    async def database(app: web.Application) -> AsyncIterator[None]:
        url = settings.effective_database_url()
        if migrate:
            await db.upgrade(url)
        engine = db.make_engine(url)
        app[ENGINE] = engine
        app[DB] = db.sessionmaker(engine)
        bus = make_bus(settings.bus_url.reveal(), settings.bus_channel_prefix)
        await bus.start()
        hub = Hub(settings.ws_queue_size)
        bus.subscribe("meeting.", hub.on_bus)
        bus.subscribe("kpi.", hub.on_kpi)
        bus.subscribe("directives.", hub.on_directives)
        bus.subscribe("auth.", hub.on_revoked)  # server.live.revocation
        bus.subscribe(RESUMED, hub.on_resumed)  # the bus came back: every client gets fresh snapshots
        resyncs = Resync(app[DB], hub, clock)
        hub.resync = resyncs.request
        app[BUS], app[HUB] = bus, hub
        # Services publish after their commit: a bus that is away costs the event, not the answer.
        deps = app[DEPS] = Deps(app[DB], clock, AfterCommitBus(bus), settings, app[SIGNING_KEY])
        app[PRESENCE] = Presence(partial(meeting_service.write_presence, deps), clock)
        app[TOKEN_CHECKS] = Coalescer(partial(auth.check_tokens, app))
        app[SNAPSHOTS] = Coalescer(partial(meeting_snapshots, app))
        heartbeat = await leases.start(app)
        deps.instance = app[INSTANCE]
        sweeper = asyncio.create_task(credentials.sweeping(hub, app[DB], clock), name="credential-sweep")
        # Events the bus refused after their commit (or that a dead process never sent): published late.
        dispatcher = asyncio.create_task(outbox.dispatching(deps), name="outbox-dispatch")
        yield
        for task in (sweeper, dispatcher):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await hub.close_all()
        await resyncs.close()
        for batches in (app[PRESENCE], app[TOKEN_CHECKS], app[SNAPSHOTS]):
            await batches.close()
        await leases.stop(app, heartbeat)
        await bus.close()
        await engine.dispose()

    app.cleanup_ctx.append(database)

    async def close_websockets(app: web.Application) -> None:
        # Before aiohttp waits for open handlers: a websocket never ends by itself, so without this a
        # stopping server would wait out its shutdown timeout for every connected console and bridge.
        if HUB in app:
            await app[HUB].close_all()

    app.on_shutdown.append(close_websockets)
    async def overdue_reminders(app: web.Application) -> AsyncIterator[None]:
        async with reminders.running(app[DEPS]):
            yield

    app.cleanup_ctx.append(overdue_reminders)
    app.cleanup_ctx.append(recordings.purging)  # recordings past their retention (issue #17)
    for module in (ops, account, pages, admin, api, kpi, meetings, minutes, directives, directive_pages,
                   openapi, live_socket, unit_search, recordings):
        app.add_routes(module.routes)
    app.router.add_static("/static/", WEB_DIR / "static", name="static")
    return app
