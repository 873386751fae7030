"""Presence leases: which server process holds which sites' live connections.

A site's ``online`` count lives in the database (``meeting_participants.online``) so that every
process of a deployment sees it. A process that dies without closing its websockets (killed, power
lost) would leave those sites counted online for ever; so each process writes, in the same
transaction as the roll call, how many connections of each site it holds (a lease), and keeps its
own row in ``server_instances`` fresh. A process whose row goes stale is taken to be dead: another
process releases its leases — the sites are disconnected as of the dead process's last sign of
life — and deletes its row (:func:`take_stale`, run by ``server.live.leases``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sessions.models import PresenceLease, ServerInstance


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
    """A clean shutdown: the process's connections were closed (and written) before this."""
    await db.execute(delete(PresenceLease).where(PresenceLease.instance_id == instance_id))
    await db.execute(delete(ServerInstance).where(ServerInstance.id == instance_id))


async def apply(db: AsyncSession, instance_id: str, meeting_id: int, changes: list[tuple[int, bool]],
                at: datetime) -> None:
    """Record a batch of connections (True) and disconnections (False) held by ``instance_id``."""
    delta: Counter[int] = Counter()
    for unit_id, up in changes:
        delta[unit_id] += 1 if up else -1
    wanted = [u for u, d in delta.items() if d]
    if not wanted:
        return
    rows = await db.execute(select(PresenceLease.unit_id, PresenceLease.count).where(
        PresenceLease.instance_id == instance_id, PresenceLease.meeting_id == meeting_id,
        PresenceLease.unit_id.in_(wanted)))
    current: dict[int, int] = {unit_id: count for unit_id, count in rows.all()}
    gone = []
    for unit_id in wanted:
        count = max(0, current.get(unit_id, 0) + delta[unit_id])
        if count == 0:
            if unit_id in current:
                gone.append(unit_id)
        elif unit_id in current:
            await db.execute(update(PresenceLease).where(
                PresenceLease.instance_id == instance_id, PresenceLease.meeting_id == meeting_id,
                PresenceLease.unit_id == unit_id).values(count=count, updated_at=at))
        else:
            db.add(PresenceLease(instance_id=instance_id, meeting_id=meeting_id, unit_id=unit_id, count=count,
                                 updated_at=at))
    if gone:
        await db.execute(delete(PresenceLease).where(
            PresenceLease.instance_id == instance_id, PresenceLease.meeting_id == meeting_id,
            PresenceLease.unit_id.in_(gone)))
    await db.flush()


@dataclass(frozen=True)
class Released:
    """The connections of one dead process in one meeting, and when they are taken to have ended."""

    meeting_id: int
    units: dict[int, int]  # unit id -> connections
    at: datetime


async def stale(db: AsyncSession, now: datetime, expiry: timedelta, own_id: str) -> list[str]:
    rows = await db.execute(select(ServerInstance.id).where(ServerInstance.seen_at < now - expiry,
                                                            ServerInstance.id != own_id).order_by(ServerInstance.id))
    return list(rows.scalars())


async def take_stale(db: AsyncSession, instance_id: str) -> list[Released] | None:
    """Claim a dead process's leases: delete its row (only one process can) and its leases, and
    return them by meeting (in meeting order, so concurrent releases lock meetings in one order).
    None: another process claimed it first."""
    seen = (await db.execute(delete(ServerInstance).where(ServerInstance.id == instance_id)
                             .returning(ServerInstance.seen_at))).scalar_one_or_none()
    if seen is None:
        return None
    leases = (await db.execute(select(PresenceLease).where(PresenceLease.instance_id == instance_id))).scalars().all()
    by_meeting: dict[int, list[PresenceLease]] = {}
    for lease in leases:
        by_meeting.setdefault(lease.meeting_id, []).append(lease)
    await db.execute(delete(PresenceLease).where(PresenceLease.instance_id == instance_id))
    # the last sign of life: its heartbeat, or a connection it recorded after that
    return [Released(mid, {lease.unit_id: lease.count for lease in rows}, max([seen, *(r.updated_at for r in rows)]))
            for mid, rows in sorted(by_meeting.items())]
