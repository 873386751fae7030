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
from server.outage import is_outage
from server.services import outbox
from server.services.meetings import messages
from server.state import CLOCK, DB, DEPS, INSTANCE, PRESENCE, SETTINGS
from sessions.store import leases

log = logging.getLogger("hoinghi.leases")


async def start(app: web.Application) -> asyncio.Task[None]:
    """Register this process and start its heartbeat (the first beat, and sweep, at once)."""
    app[INSTANCE] = uuid.uuid4().hex
    async with transaction(app[DB]) as db:
        await leases.register(db, app[INSTANCE], app[CLOCK]())
    return asyncio.create_task(_loop(app), name="presence-heartbeat")


async def stop(app: web.Application, task: asyncio.Task[None]) -> None:
    """After this process's connections were closed: release what it still holds (its sites' leave
    is recorded, their seats lowered) and leave without being swept. If the database cannot be
    reached now, the process is released as dead once its lease expires."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    try:
        async with transaction(app[DB]) as db:
            events = await leases.leave(db, app[INSTANCE], app[CLOCK]())
            staged = await outbox.stage(db, messages(events))
    except Exception:
        log.exception("could not unregister this server instance; it will be released as dead")
        return
    await outbox.deliver(app[DEPS], staged)


async def _loop(app: web.Application) -> None:
    every = app[SETTINGS].presence_heartbeat_seconds
    streak = 0  # heartbeats in a row that reached the database
    while True:
        try:
            # Just back from a database outage, every other process's row looks stale too: give
            # them a couple of heartbeats to write theirs before judging anyone dead.
            await beat(app, sweep=streak >= 2)
            streak += 1
        except Exception as exc:
            streak = 0
            if is_outage(exc):
                log.warning("presence heartbeat failed: the database is unreachable")
            else:
                log.exception("presence heartbeat failed")
        await asyncio.sleep(every)


async def beat(app: web.Application, sweep: bool = True) -> int:
    """One heartbeat, then (``sweep``) release every dead process found. Returns how many were released."""
    now = app[CLOCK]()
    expiry = timedelta(seconds=app[SETTINGS].presence_expiry_seconds)
    async with transaction(app[DB]) as db:
        alive = await leases.heartbeat(db, app[INSTANCE], now)
        dead = await leases.stale(db, now, expiry, app[INSTANCE]) if sweep else []
    if not alive:
        count = app[PRESENCE].reassert()
        log.warning("this server instance had been taken for dead; its connections were written again",
                    extra={"connections": count})
    released = 0
    for instance_id in dead:
        if await _release(app, instance_id):
            released += 1
    return released


async def _release(app: web.Application, instance_id: str) -> bool:
    try:
        async with transaction(app[DB]) as db:
            events = await leases.take_stale(db, instance_id)
            if events is None:
                return False  # another process released it
            staged = await outbox.stage(db, messages(events))
    except Exception:  # tried again at the next heartbeat: its seats stay as they are meanwhile
        log.exception("could not release a dead server instance's connections", extra={"instance": instance_id})
        return False
    await outbox.deliver(app[DEPS], staged)
    log.warning("a server instance stopped answering: its connections were released",
                extra={"instance": instance_id, "seats": len(events)})
    return True
