"""What a service needs from the running server, handed over explicitly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.live.bus import Bus
from server.settings import Settings


@dataclass(eq=False)
class Deps:
    """The session factory, clock, bus and settings of one server process. ``instance`` (this
    process's id among the servers sharing the database) is known once the process registered."""

    db: async_sessionmaker[AsyncSession]
    clock: Callable[[], datetime]
    bus: Bus
    settings: Settings
    signing_key: bytes
    instance: str = ""
    # Outbox rows this process published at once and has yet to mark delivered: the dispatcher
    # marks them in its next round (server.services.outbox), not a transaction per change.
    published: list[int] = field(default_factory=list)
