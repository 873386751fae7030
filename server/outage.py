"""Telling an outage from a bug: a request that failed because PostgreSQL or Redis could not be
reached is answered 503 ``unavailable`` (HTTP, server.errors) or an ``unavailable`` error frame
(websocket, server.live.socket) — the client tries again in a few seconds — while anything else
stays a logged ``internal_error``. And a committed change whose event the bus could not take is
still a success: ``AfterCommitBus`` logs what was lost instead of failing the request.
"""

from __future__ import annotations

import logging
import socket

from asyncpg import exceptions as pg
from redis import exceptions as redis_errors
from sqlalchemy import exc as sa

from server.live.bus import Bus, Handler

log = logging.getLogger("hoinghi.outage")

RETRY_AFTER = 5  # seconds: what a client waits before it tries again (HTTP Retry-After)
UNAVAILABLE = "Hệ thống tạm thời gián đoạn kết nối tới cơ sở dữ liệu hoặc kênh sự kiện. Vui lòng thử lại sau ít giây."

_CAUSES: tuple[type[BaseException], ...] = (
    ConnectionError, TimeoutError, socket.gaierror,  # refused, reset, timed out, name not found
    pg.PostgresConnectionError, pg.CannotConnectNowError, pg.AdminShutdownError, pg.CrashShutdownError,
    redis_errors.ConnectionError, redis_errors.TimeoutError,
    sa.TimeoutError,  # no pooled connection came free in time
)


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says a dependency could not be reached, rather than that
    a request or our code was wrong. A bare ``OSError`` counts (asyncio's "Multiple exceptions:
    Connect call failed"); its file-system subclasses do not."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen or len(seen) > 20:
            continue
        seen.add(id(e))
        if isinstance(e, _CAUSES) or type(e) is OSError:
            return True
        if isinstance(e, sa.DBAPIError) and e.connection_invalidated:
            return True
        todo += [e.__cause__, e.__context__, getattr(e, "orig", None)]
    return False


class AfterCommitBus:
    """The bus as services see it: they publish after their transaction committed, so a publish that
    fails must not turn a done change into an error answer (the client would retry what is already
    stored). The loss is logged with the topic. Events that announce a change go through the outbox
    instead (server.services.outbox: stored with the change, published late); what still comes
    here (best-effort kinds, credential notices) is gone, and clients that resync read the state."""

    def __init__(self, bus: Bus) -> None:
        self.inner = bus

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    def subscribe(self, prefix: str, handler: Handler) -> None:
        self.inner.subscribe(prefix, handler)

    async def publish(self, topic: str, message: bytes) -> None:
        try:
            await self.inner.publish(topic, message)
        except Exception as exc:
            if is_outage(exc):
                log.warning("event not published: the bus is unreachable (the change itself is committed)",
                            extra={"topic": topic, "bytes": len(message), "error": type(exc).__name__})
            else:
                log.exception("event not published (the change itself is committed)", extra={"topic": topic})
