"""Presence leases: which server process holds which sites' live connections.

A site's ``online`` count lives in the database (``meeting_participants.online``) so that every
process of a deployment sees it; it is the sum of the connections live processes hold
(``sessions.store.presence``). A process that dies without closing its websockets (killed, power
lost) would leave those sites counted online for ever; so each process keeps its own row in
``server_instances`` fresh. A process whose row goes stale is taken to be dead: another
process releases its leases — the sites are disconnected as of the dead process's last sign of
life — and deletes its row (:func:`take_stale`, run by ``server.live.leases``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sessions.models import PresenceLease, ServerInstance
from sessions.store import presence
from sessions.store.live import LiveEvent


async def register(db: AsyncSession, instance_id: str, at: datetime) -> None:
    db.add(ServerInstance(id=instance_id, started_at=at, seen_at=at))
    await db.flush()


async def heartbeat(db: AsyncSession, instance_id: str, at: datetime) -> bool:
    """Refresh this process's row. False: it was gone (taken for dead and released meanwhile);
    it has been registered again, and the caller must re-assert the connections it holds."""
    result = await db.execute(update(ServerInstance).where(ServerInstance.id == instance_id).values(seen_at=at))
    if result.rowcount:  # type: ignore[attr-defined]
        return True
    await register(db, instance_id, at)
    return False


async def unregister(db: AsyncSession, instance_id: str) -> None:
    """Forget a process and its leases without settling its seats: the last resort when releasing
    them failed (``leave`` and ``take_stale`` are the ordinary ways)."""
    await db.execute(delete(PresenceLease).where(PresenceLease.instance_id == instance_id))
    await db.execute(delete(ServerInstance).where(ServerInstance.id == instance_id))


async def stale(db: AsyncSession, now: datetime, expiry: timedelta, own_id: str) -> list[str]:
    rows = await db.execute(select(ServerInstance.id).where(ServerInstance.seen_at < now - expiry,
                                                            ServerInstance.id != own_id).order_by(ServerInstance.id))
    return list(rows.scalars())


async def take_stale(db: AsyncSession, instance_id: str) -> list[LiveEvent] | None:
    """Claim a dead process: delete its row (only one process can) and release its leases as of its
    last sign of life — its heartbeat, or a connection it recorded after that. None: another process
    claimed it first."""
    seen = (await db.execute(delete(ServerInstance).where(ServerInstance.id == instance_id)
                             .returning(ServerInstance.seen_at))).scalar_one_or_none()
    if seen is None:
        return None
    last = (await db.execute(select(func.max(PresenceLease.updated_at)).where(
        PresenceLease.instance_id == instance_id))).scalar_one_or_none()
    return await presence.release(db, instance_id, max(seen, last) if last is not None else seen)


async def leave(db: AsyncSession, instance_id: str, at: datetime) -> list[LiveEvent]:
    """A clean shutdown: release what the process still holds (its sites' seats go offline, their
    attendance intervals close at ``at``) and delete its row."""
    events = await presence.release(db, instance_id, at)
    await db.execute(delete(ServerInstance).where(ServerInstance.id == instance_id))
    return events
