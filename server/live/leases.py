"""This server process's heartbeat, and the release of processes that died without a word.

Every ``presence_heartbeat_seconds`` the process refreshes its ``server_instances`` row, then
looks for rows older than ``presence_expiry_seconds``: such a process was killed or lost its
machine, and the sites connected through it would otherwise stay counted online. Their connections
(``presence_leases``) are disconnected as of its last sign of life — the roll call and the
attendance intervals show the gap — and the events reach every console. One process claims each
dead one (deleting its row), so nothing is released twice. See ``sessions.store.leases``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import timedelta

from aiohttp import web

from server.db import transaction
from server.services.meetings import publish
from server.state import CLOCK, DB, DEPS, INSTANCE, PRESENCE, SETTINGS
from sessions.store import leases, live
from sessions.store.live import LiveEvent

log = logging.getLogger("hoinghi.leases")


async def start(app: web.Application) -> asyncio.Task[None]:
    """Register this process and start its heartbeat (the first beat, and sweep, at once)."""
    app[INSTANCE] = uuid.uuid4().hex
    async with transaction(app[DB]) as db:
        await leases.register(db, app[INSTANCE], app[CLOCK]())
    return asyncio.create_task(_loop(app), name="presence-heartbeat")


async def stop(app: web.Application, task: asyncio.Task[None]) -> None:
    """After this process's connections were closed and written: leave without being swept."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    try:
        async with transaction(app[DB]) as db:
            await leases.unregister(db, app[INSTANCE])
    except Exception:
        log.exception("could not unregister this server instance; it will be released as dead")


async def _loop(app: web.Application) -> None:
    every = app[SETTINGS].presence_heartbeat_seconds
    while True:
        try:
            await beat(app)
        except Exception:
            log.exception("presence heartbeat failed")
        await asyncio.sleep(every)


async def beat(app: web.Application) -> int:
    """One heartbeat, then release every dead process found. Returns how many were released."""
    now = app[CLOCK]()
    expiry = timedelta(seconds=app[SETTINGS].presence_expiry_seconds)
    async with transaction(app[DB]) as db:
        alive = await leases.heartbeat(db, app[INSTANCE], now)
        dead = await leases.stale(db, now, expiry, app[INSTANCE])
    if not alive:
        count = await app[PRESENCE].reassert()
        log.warning("this server instance had been taken for dead; its connections were written again",
                    extra={"connections": count})
    released = 0
    for instance_id in dead:
        if await _release(app, instance_id):
            released += 1
    return released


async def _release(app: web.Application, instance_id: str) -> bool:
    events: list[LiveEvent] = []
    connections = 0
    try:
        async with transaction(app[DB]) as db:
            claimed = await leases.take_stale(db, instance_id)
            if claimed is None:
                return False  # another process released it
            for part in claimed:
                changes = [(unit_id, False) for unit_id, n in part.units.items() for _ in range(n)]
                connections += len(changes)
                events += await live.presence_many(db, part.meeting_id, changes, part.at)
    except Exception:
        log.exception("could not release a dead server instance's connections; dropping its leases",
                      extra={"instance": instance_id})
        async with transaction(app[DB]) as db:
            await leases.unregister(db, instance_id)
        return True
    await publish(app[DEPS], events)
    log.warning("a server instance stopped answering: its connections were released",
                extra={"instance": instance_id, "connections": connections})
    return True
