"""Typed application state (``web.AppKey``): no module-level globals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from server.batching import Coalescer
from server.exports.cache import ExportCache
from server.live.bus import Bus
from server.live.hub import Hub, Subscription
from server.live.presence import Presence
from server.metrics import Metrics
from server.services.deps import Deps
from server.settings import Settings
from sessions.roles import Principal

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
DB = web.AppKey("db", async_sessionmaker[AsyncSession])
Clock = Callable[[], datetime]
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
SIGNING_KEY = web.AppKey("signing_key", bytes)
METRICS = web.AppKey("metrics", Metrics)
EXPORTS = web.AppKey("exports", ExportCache)  # rendered minutes files per (meeting, version, format)

# Per-request storage, set by the auth middleware.
PRINCIPAL = web.RequestKey("principal", object)
LOGIN_INFO = web.RequestKey("login_info", object)
CSRF_TOKEN = web.RequestKey("csrf_token", str)

BUS: web.AppKey[Bus] = web.AppKey("bus")
HUB: web.AppKey[Hub] = web.AppKey("hub")
PRESENCE: web.AppKey[Presence] = web.AppKey("presence")
INSTANCE = web.AppKey("instance", str)  # this server process's id in server_instances (server.live.leases)
DEPS: web.AppKey[Deps] = web.AppKey("deps")  # what services are handed (server.services.deps)
# Snapshots of ``meeting:`` subscriptions, batched per meeting (see server.live.topics).
SNAPSHOTS: web.AppKey[Coalescer[int, Subscription, dict[str, Any]]] = web.AppKey("snapshots")
# Bearer token checks, batched: (token id, token, now) → principal (see server.auth.check_tokens).
TOKEN_CHECKS: web.AppKey[Coalescer[None, tuple[int, str, datetime], Principal]] = web.AppKey("token_checks")
