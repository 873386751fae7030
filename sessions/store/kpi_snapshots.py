"""KPI values frozen into a meeting's record: when it goes live and when it concludes, the
rolled-up totals of the chair's unit and of every participating unit are copied in one
INSERT … SELECT, so the minutes show what the meeting saw even after later reports."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from sessions.models import KpiTotal, Meeting, MeetingKpiSnapshot, Participant, UTCDateTime

PHASES = ("live", "concluded")


async def freeze(db: AsyncSession, meeting_id: int, phase: str, at: datetime) -> int:
    """Replace the ``phase`` snapshot of the meeting with the current totals; returns rows copied."""
    if phase not in PHASES:
        raise ValueError(f"unknown snapshot phase {phase!r}")
    await db.execute(delete(MeetingKpiSnapshot).where(MeetingKpiSnapshot.meeting_id == meeting_id,
                                                      MeetingKpiSnapshot.phase == phase))
    units = select(Participant.unit_id).where(Participant.meeting_id == meeting_id).union(
        select(Meeting.chair_unit_id).where(Meeting.id == meeting_id))
    source = select(literal(meeting_id), literal(phase), KpiTotal.unit_id, KpiTotal.indicator, KpiTotal.period,
                    KpiTotal.num, KpiTotal.den, literal(at, type_=UTCDateTime())
                    ).where(KpiTotal.unit_id.in_(units))
    cols = ["meeting_id", "phase", "unit_id", "indicator", "period", "num", "den", "taken_at"]
    result = await db.execute(insert(MeetingKpiSnapshot).from_select(cols, source))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def values(db: AsyncSession, meeting_id: int, phase: str,
                 unit_id: int | None = None) -> dict[tuple[int, str, str], tuple[int, int]]:
    """(unit id, indicator, period) → (num, den) of one snapshot (optionally of one unit)."""
    stmt = select(MeetingKpiSnapshot.unit_id, MeetingKpiSnapshot.indicator, MeetingKpiSnapshot.period,
                  MeetingKpiSnapshot.num, MeetingKpiSnapshot.den).where(
        MeetingKpiSnapshot.meeting_id == meeting_id, MeetingKpiSnapshot.phase == phase)
    if unit_id is not None:
        stmt = stmt.where(MeetingKpiSnapshot.unit_id == unit_id)
    return {(u, i, p): (int(n), int(d)) for u, i, p, n, d in (await db.execute(stmt)).all()}
