"""What a live KPI slide reads besides the totals: each unit's family (parent's children, its own
children), the values frozen at its latest concluded meeting, and its monthly trend. A few queries
for any number of units (chunks of 2,000 ids)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from sessions.kpi import Value
from sessions.models import KpiTotal, Meeting, MeetingKpiSnapshot, Unit
from sessions.timezone import VN

PERIOD = "campaign"
TREND_MONTHS = 6
CHUNK = 2000


@dataclass(frozen=True, slots=True)
class Previous:
    """A unit's campaign values frozen when its latest concluded meeting ended."""

    meeting_id: int
    title: str
    date: str
    values: dict[str, Value]


async def previous_meeting(db: AsyncSession, unit_ids: Sequence[int], period: str = PERIOD) -> dict[int, Previous]:
    """Per unit, the snapshot of the last concluded meeting that holds its values (one query per
    chunk for the rows, one for the meetings' titles)."""
    snap = MeetingKpiSnapshot
    out: dict[int, Previous] = {}
    rows: list[Any] = []
    for start in range(0, len(unit_ids), CHUNK):
        chunk = unit_ids[start:start + CHUNK]
        last = (select(snap.unit_id, func.max(snap.taken_at).label("at"))
                .where(snap.phase == "concluded", snap.period == period, snap.unit_id.in_(chunk))
                .group_by(snap.unit_id).subquery())
        rows += (await db.execute(
            select(snap.unit_id, snap.meeting_id, snap.indicator, snap.num, snap.den)
            .join(last, (last.c.unit_id == snap.unit_id) & (last.c.at == snap.taken_at))
            # the chunk again: without it PostgreSQL, before it has statistics of a freshly filled
            # table, nested-looped every snapshot against the subquery (57 s for the nation's slide)
            .where(snap.phase == "concluded", snap.period == period, snap.unit_id.in_(chunk)))).all()
    if not rows:
        return out
    meetings = {r.id: r for r in (await db.execute(
        select(Meeting.id, Meeting.title, Meeting.scheduled_start)
        .where(Meeting.id.in_({r.meeting_id for r in rows})))).all()}
    # Two meetings concluded at the same instant: the later one (higher id) is the reference.
    latest: dict[int, int] = {}
    for r in rows:
        latest[r.unit_id] = max(latest.get(r.unit_id, 0), r.meeting_id)
    for r in rows:
        if r.meeting_id != latest[r.unit_id]:
            continue
        m = meetings[r.meeting_id]
        prev = out.get(r.unit_id)
        if prev is None:
            prev = out[r.unit_id] = Previous(m.id, m.title, m.scheduled_start.astimezone(VN).strftime("%d/%m/%Y"), {})
        prev.values[r.indicator] = Value(int(r.num), int(r.den))
    return out


async def monthly_trend(db: AsyncSession, unit_ids: Sequence[int],
                        months: int = TREND_MONTHS) -> dict[int, dict[str, list[tuple[str, Value]]]]:
    """Per unit and indicator, the last ``months`` monthly totals (oldest first)."""
    found: dict[int, dict[str, list[tuple[str, Value]]]] = {}
    for start in range(0, len(unit_ids), CHUNK):
        rows = await db.execute(select(KpiTotal.unit_id, KpiTotal.indicator, KpiTotal.period, KpiTotal.num,
                                       KpiTotal.den)
                                .where(KpiTotal.unit_id.in_(unit_ids[start:start + CHUNK]),
                                       KpiTotal.period.like("____-__"), KpiTotal.period.not_like("%Q%")))
        for uid, ind, period, num, den in rows.all():
            found.setdefault(uid, {}).setdefault(ind, []).append((period, Value(int(num), int(den))))
    for per_unit in found.values():
        for ind, series in per_unit.items():
            per_unit[ind] = sorted(series)[-months:]
    return found


async def unit_family(db: AsyncSession, wanted: Sequence[int]
                      ) -> tuple[dict[int, Any], dict[int | None, list[Any]], dict[int, list[Any]]]:
    """(units by id, their parents' children by parent id, the children of root units by root id)."""
    units: dict[int, Any] = {}
    for start in range(0, len(wanted), CHUNK):
        rows = await db.execute(select(Unit.id, Unit.code, Unit.name, Unit.level, Unit.parent_id)
                                .where(Unit.id.in_(wanted[start:start + CHUNK])))
        units |= {r.id: r for r in rows.all()}
    parents = sorted({u.parent_id for u in units.values() if u.parent_id is not None})
    roots = [u.id for u in units.values() if u.parent_id is None]
    family: dict[int | None, list[Any]] = {}
    for start in range(0, len(parents), CHUNK):
        rows = await db.execute(select(Unit.id, Unit.code, Unit.name, Unit.parent_id)
                                .where(Unit.parent_id.in_(parents[start:start + CHUNK])))
        for r in rows.all():
            family.setdefault(r.parent_id, []).append(r)
    children: dict[int, list[Any]] = {}
    if roots:
        rows = await db.execute(select(Unit.id, Unit.code, Unit.name, Unit.parent_id).where(Unit.parent_id.in_(roots)))
        for r in rows.all():
            children.setdefault(r.parent_id, []).append(r)
    return units, family, children


async def sibling_ids(db: AsyncSession, unit: Any) -> list[int]:
    """The unit and the other children of its parent (a root unit: itself alone)."""
    if unit.parent_id is None:
        return [unit.id]
    return list((await db.execute(select(Unit.id).where(Unit.parent_id == unit.parent_id))).scalars())
