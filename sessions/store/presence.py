"""Who is online, derived from the leases of live server processes.

Each server process writes how many connections of each (meeting, unit) it holds — the *count*
itself, never an increment (``hold``), so a write replayed after a failure that had in fact
committed changes nothing. A seat's ``online`` is the sum of the counts of processes that are alive
(``settle`` brings ``meeting_participants.online`` to that sum, opening and closing attendance
intervals through ``sessions.store.live.presence_many``). A process's rows go with it: deleted and
settled when it stops cleanly (``release``), or when another process finds it dead
(``sessions.store.leases.take_stale``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sessions.models import AttendanceInterval, Meeting, Participant, PresenceLease
from sessions.store import live
from sessions.store.live import LiveEvent, NotParticipant


async def _lock_meeting(db: AsyncSession, meeting_id: int) -> None:
    # Before the counts are summed: two processes settling one meeting at once must not each miss
    # the other's new row (PostgreSQL; SQLite serialises writers anyway).
    await db.execute(select(Meeting.id).where(Meeting.id == meeting_id).with_for_update())


async def hold(db: AsyncSession, instance_id: str, meeting_id: int, counts: dict[int, int],
               at: datetime) -> list[LiveEvent]:
    """``instance_id`` now holds ``counts[unit]`` connections of these units in this meeting (0:
    none). Idempotent: writing the same counts twice changes nothing the second time."""
    if not counts:
        return []
    await _lock_meeting(db, meeting_id)
    missing = set(counts) - await live.participating(db, meeting_id, set(counts))
    if missing:
        raise NotParticipant("Đơn vị không tham dự hội nghị này", unit_id=min(missing))
    current = dict((await db.execute(select(PresenceLease.unit_id, PresenceLease.count).where(
        PresenceLease.instance_id == instance_id, PresenceLease.meeting_id == meeting_id,
        PresenceLease.unit_id.in_(counts)))).all())
    gone = [u for u, n in counts.items() if n <= 0 and u in current]
    for unit_id, count in counts.items():
        if count <= 0 or current.get(unit_id) == count:
            continue
        if unit_id in current:
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
    return await settle(db, meeting_id, set(counts), at)


async def settle(db: AsyncSession, meeting_id: int, unit_ids: set[int], at: datetime) -> list[LiveEvent]:
    """Bring these seats' ``online`` to the sum of the leases held for them (events for those
    that changed; none, and no seq taken, when all agree)."""
    totals = dict((await db.execute(select(PresenceLease.unit_id, func.sum(PresenceLease.count)).where(
        PresenceLease.meeting_id == meeting_id, PresenceLease.unit_id.in_(unit_ids))
        .group_by(PresenceLease.unit_id))).all())
    stored = (await db.execute(select(Participant.unit_id, Participant.online).where(
        Participant.meeting_id == meeting_id, Participant.unit_id.in_(unit_ids)))).all()
    changes: list[tuple[int, bool]] = []
    for unit_id, online in sorted(stored):
        diff = int(totals.get(unit_id) or 0) - online
        changes += [(unit_id, diff > 0)] * abs(diff)
    return await live.presence_many(db, meeting_id, changes, at)


async def release(db: AsyncSession, instance_id: str, at: datetime) -> list[LiveEvent]:
    """Take away everything ``instance_id`` held, as of ``at``: its seats go offline unless another
    process holds them too. A seat another process took over only *after* ``at`` (the site
    reconnected there) shows the gap in its attendance: its interval ends at ``at`` and a new one
    begins when the other process recorded it."""
    rows = (await db.execute(select(PresenceLease.meeting_id, PresenceLease.unit_id).where(
        PresenceLease.instance_id == instance_id))).all()
    by_meeting: dict[int, set[int]] = {}
    for meeting_id, unit_id in rows:
        by_meeting.setdefault(meeting_id, set()).add(unit_id)
    await db.execute(delete(PresenceLease).where(PresenceLease.instance_id == instance_id))
    events: list[LiveEvent] = []
    for meeting_id, units in sorted(by_meeting.items()):  # one lock order for concurrent releases
        await _lock_meeting(db, meeting_id)
        events += await settle(db, meeting_id, units, at)
        await _show_gaps(db, meeting_id, units, at)
    return events


async def _show_gaps(db: AsyncSession, meeting_id: int, unit_ids: set[int], at: datetime) -> None:
    since = dict((await db.execute(select(PresenceLease.unit_id, func.min(PresenceLease.updated_at)).where(
        PresenceLease.meeting_id == meeting_id, PresenceLease.unit_id.in_(unit_ids))
        .group_by(PresenceLease.unit_id))).all())
    for unit_id, back in since.items():
        if back is None or back <= at:
            continue  # held elsewhere all along: no gap
        closed = await db.execute(update(AttendanceInterval).where(
            AttendanceInterval.meeting_id == meeting_id, AttendanceInterval.unit_id == unit_id,
            AttendanceInterval.left_at.is_(None), AttendanceInterval.joined_at <= at).values(left_at=at))
        if closed.rowcount:  # type: ignore[attr-defined]
            db.add(AttendanceInterval(meeting_id=meeting_id, unit_id=unit_id, joined_at=back))
    await db.flush()
