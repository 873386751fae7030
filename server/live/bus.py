"""The event bus: publish bytes on a topic, subscribe to a topic prefix.

In-process by default. With ``bus_url = redis://…`` every server process publishes to and
listens on Redis pub/sub, so a hand raised through one process reaches consoles on another.
Messages are serialised once by the publisher; the bus never looks inside them.

Redis pub/sub delivers only to whoever is subscribed at that moment: while a process's
subscription is down (Redis restarted, the connection dropped) its messages are gone. When the
subscription is back, the bus calls the handlers of ``RESUMED`` (a local notice, never published)
and the hub sends its clients fresh snapshots (server.live.resync).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger("hoinghi.bus")
Handler = Callable[[str, bytes], Awaitable[None]]
RESUMED = "bus.resumed"  # told locally when the subscription is back after a drop: what came meanwhile is lost


class Bus(Protocol):
    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def publish(self, topic: str, message: bytes) -> None: ...
    def subscribe(self, prefix: str, handler: Handler) -> None: ...


class LocalBus:
    """Delivers in the publishing process only, in publish order."""

    def __init__(self) -> None:
        self._handlers: list[tuple[str, Handler]] = []

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._handlers.clear()

    def subscribe(self, prefix: str, handler: Handler) -> None:
        self._handlers.append((prefix, handler))

    async def publish(self, topic: str, message: bytes) -> None:
        for prefix, handler in list(self._handlers):
            if topic.startswith(prefix):
                await handler(topic, message)


class RedisBus:
    """Redis pub/sub: one pattern subscription per process, one reader task."""

    def __init__(self, url: str, prefix: str = "hoinghi") -> None:
        self._url = url
        self._prefix = prefix + ":"
        self._handlers: list[tuple[str, Handler]] = []
        self._task: asyncio.Task[None] | None = None
        self._subscribed = False  # the first subscription was confirmed: a later confirmation is a resume
        self._lost_at: float | None = None  # when the subscription failed (monotonic), while it is down

    async def start(self) -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(self._url)
        self._pub = Redis.from_url(self._url)
        await self._redis.ping()
        self._pubsub = self._redis.pubsub()  # its psubscribe confirmations say when it is (back) on
        await self._pubsub.psubscribe(self._prefix + "*")
        self._task = asyncio.create_task(self._reader(), name="redis-bus-reader")

    async def _reader(self) -> None:
        """Read and dispatch. A failed read is retried every half second (redis-py reconnects and
        subscribes again); the confirmation of that new subscription is the moment to resync."""
        while True:
            try:
                msg = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._lost_at is None:
                    self._lost_at = time.monotonic()
                    log.warning("redis bus subscription lost; reconnecting (events meanwhile are lost, "
                                "clients resync when it is back)", extra={"error": f"{type(exc).__name__}: {exc}"})
                await asyncio.sleep(0.5)
                continue
            if msg is None:
                continue
            if msg.get("type") == "psubscribe":
                await self._confirmed()
            elif msg.get("type") == "pmessage":
                channel = msg["channel"].decode() if isinstance(msg["channel"], bytes) else str(msg["channel"])
                await self._dispatch(channel[len(self._prefix):], msg["data"])

    async def _confirmed(self) -> None:
        """Redis confirmed the pattern subscription: the first time at start, later after a drop."""
        if not self._subscribed:
            self._subscribed = True
            return
        down = time.monotonic() - self._lost_at if self._lost_at is not None else 0.0
        self._lost_at = None
        log.warning("redis bus subscription back; clients resync", extra={"down_s": round(down, 1)})
        await self._dispatch(RESUMED, b"")

    async def _dispatch(self, topic: str, data: bytes) -> None:
        for prefix, handler in list(self._handlers):
            if topic.startswith(prefix):
                try:
                    await handler(topic, data)
                except Exception:
                    log.exception("bus handler failed", extra={"topic": topic})

    def subscribe(self, prefix: str, handler: Handler) -> None:
        self._handlers.append((prefix, handler))

    async def publish(self, topic: str, message: bytes) -> None:
        await self._pub.publish(self._prefix + topic, message)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()
        await self._redis.aclose()
        await self._pub.aclose()


def make_bus(url: str, prefix: str = "hoinghi") -> Bus:
    if not url:
        return LocalBus()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisBus(url, prefix)
    raise ValueError(f"bus_url không hỗ trợ: {url.split('://')[0]}://")
