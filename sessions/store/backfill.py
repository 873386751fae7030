"""Writing a meeting's past as it happened (the demo's seed conference and its July briefing):
a whole roll call and the floor turns with their times, KPI snapshots as they stood. Everything
else a seeded meeting needs goes through the store functions the routes use."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sessions.meetings import Attendance
from sessions.models import Assignment, AttendanceInterval, FloorTurn, KpiTotal, MeetingKpiSnapshot, Participant, Unit

CHUNK = 2000


async def seats(db: AsyncSession, meeting_id: int) -> list[tuple[int, str]]:
    """(unit id, unit code) of every participant, by code."""
    return [(uid, code) for uid, code in (await db.execute(
        select(Participant.unit_id, Unit.code).join(Unit, Unit.id == Participant.unit_id)
        .where(Participant.meeting_id == meeting_id).order_by(Unit.code))).all()]


async def roll_call(db: AsyncSession, meeting_id: int, present: list[int], absent: dict[int, str],
                    joined: datetime, left: datetime, by: str) -> None:
    """``present`` online from ``joined`` to ``left`` (one attendance interval each), ``absent``
    with their reasons."""
    for start in range(0, len(present), CHUNK):
        chunk = present[start:start + CHUNK]
        await db.execute(update(Participant).where(Participant.meeting_id == meeting_id,
                                                   Participant.unit_id.in_(chunk))
                         .values(status=Attendance.PRESENT_ONLINE.value, marked_by=by))
        db.add_all(AttendanceInterval(meeting_id=meeting_id, unit_id=uid, joined_at=joined, left_at=left)
                   for uid in chunk)
    for uid, reason in absent.items():
        await db.execute(update(Participant).where(Participant.meeting_id == meeting_id, Participant.unit_id == uid)
                         .values(status=Attendance.ABSENT.value, reason=reason, marked_by=by))
    await db.flush()


async def floor_turn(db: AsyncSession, meeting_id: int, unit_id: int, started: datetime, ended: datetime,
                     by: str) -> None:
    """A closed turn at the floor, counted in the site's spoken seconds."""
    db.add(FloorTurn(meeting_id=meeting_id, unit_id=unit_id, started_at=started, ended_at=ended, granted_by=by))
    await db.execute(update(Participant).where(Participant.meeting_id == meeting_id, Participant.unit_id == unit_id)
                     .values(spoke_seconds=Participant.spoke_seconds + int((ended - started).total_seconds())))
    await db.flush()


async def assignment_of(db: AsyncSession, unit_code: str, depth: int) -> int:
    """The one assignment of that unit at that depth of a directive tree."""
    return int((await db.execute(select(Assignment.id).join(Unit, Unit.id == Assignment.unit_id)
                                 .where(Unit.code == unit_code, Assignment.depth == depth))).scalar_one())


async def totals(db: AsyncSession, periods: Iterable[str]) -> list[tuple[int, str, str, int, int]]:
    """Every stored KPI total of these periods: (unit id, indicator, period, num, den)."""
    rows = await db.execute(select(KpiTotal.unit_id, KpiTotal.indicator, KpiTotal.period, KpiTotal.num,
                                   KpiTotal.den).where(KpiTotal.period.in_(tuple(periods))))
    return [(uid, ind, period, int(num), int(den)) for uid, ind, period, num, den in rows.all()]


async def kpi_snapshot(db: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Snapshot rows as ``MeetingKpiSnapshot`` columns, inserted in chunks."""
    for start in range(0, len(rows), 5000):
        await db.execute(insert(MeetingKpiSnapshot), rows[start:start + 5000])
