"""The event bus: publish bytes on a topic, subscribe to a topic prefix.

In-process by default. With ``bus_url = redis://…`` every server process publishes to and
listens on Redis pub/sub, so a hand raised through one process reaches consoles on another.
Messages are serialised once by the publisher; the bus never looks inside them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger("hoinghi.bus")
Handler = Callable[[str, bytes], Awaitable[None]]


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
        self._ready = asyncio.Event()

    async def start(self) -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(self._url)
        self._pub = Redis.from_url(self._url)
        await self._redis.ping()
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.psubscribe(self._prefix + "*")
        self._task = asyncio.create_task(self._reader(), name="redis-bus-reader")

    async def _reader(self) -> None:
        while True:
            try:
                msg = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("redis bus read failed; retrying")
                await asyncio.sleep(0.5)
                continue
            if msg is None or msg.get("type") != "pmessage":
                continue
            channel = msg["channel"].decode() if isinstance(msg["channel"], bytes) else str(msg["channel"])
            topic = channel[len(self._prefix):]
            for prefix, handler in list(self._handlers):
                if topic.startswith(prefix):
                    try:
                        await handler(topic, msg["data"])
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
