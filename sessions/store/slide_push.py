"""Slides pushed to the site pages of a meeting (issue #14): one row per meeting and scope unit
(``SlidePush``). A push or release takes the meeting's next seq and returns one ``slide`` event
carrying every active push of the meeting, so a client that keeps the highest-seq state it saw
is always right (``sessions.slide_push.effective`` picks what one site shows)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from sessions.meetings import OPEN_STATES, require_open
from sessions.models import Meeting, SlidePush, Unit, UnitClosure
from sessions.store.live import LiveEvent, state_of
from sessions.store.meetings import bump_seq


async def pushes(db: AsyncSession, meeting_id: int) -> list[dict[str, Any]]:
    """The meeting's active pushes, oldest first."""
    scope, slide = aliased(Unit), aliased(Unit)
    rows = (await db.execute(
        select(SlidePush.scope_unit_id, scope.code, scope.name, scope.level,
               SlidePush.slide_unit_id, slide.code, slide.name, slide.level,
               SlidePush.seq, SlidePush.pushed_at, SlidePush.pushed_by)
        .join(scope, scope.id == SlidePush.scope_unit_id).join(slide, slide.id == SlidePush.slide_unit_id)
        .where(SlidePush.meeting_id == meeting_id).order_by(SlidePush.seq))).all()
    return [{"scope": {"unit_id": r[0], "code": r[1], "name": r[2], "level": r[3]},
             "slide": {"unit_id": r[4], "code": r[5], "name": r[6], "level": r[7]},
             "seq": r[8], "at": r[9].isoformat(), "by": r[10]} for r in rows]


async def paths(db: AsyncSession, unit_ids: Iterable[int]) -> dict[int, list[int]]:
    """Each unit's ancestors, itself included, in one query."""
    out: dict[int, list[int]] = {}
    wanted = set(unit_ids)
    if not wanted:
        return out
    for uid, ancestor in (await db.execute(select(UnitClosure.descendant_id, UnitClosure.ancestor_id)
                                           .where(UnitClosure.descendant_id.in_(wanted)))).all():
        out.setdefault(uid, []).append(ancestor)
    return {uid: sorted(a) for uid, a in out.items()}


async def _event(db: AsyncSession, meeting_id: int, seq: int) -> LiveEvent:
    return LiveEvent(meeting_id, seq, "slide", {"seq": seq, "pushes": await pushes(db, meeting_id)})


async def push(db: AsyncSession, meeting_id: int, scope_unit_id: int, slide_unit_id: int, at: datetime,
               by_name: str) -> list[LiveEvent]:
    """The sites under ``scope_unit_id`` show ``slide_unit_id``'s slide (replacing that scope's
    earlier push). The meeting must be open (rehearsal or live)."""
    seq = await bump_seq(db, meeting_id)
    require_open(await state_of(db, meeting_id), "trình chiếu slide")
    row = await db.get(SlidePush, (meeting_id, scope_unit_id))
    if row is None:
        row = SlidePush(meeting_id=meeting_id, scope_unit_id=scope_unit_id)
        db.add(row)
    row.slide_unit_id, row.seq, row.pushed_at, row.pushed_by = slide_unit_id, seq, at, by_name[:100]
    await db.flush()
    return [await _event(db, meeting_id, seq)]


async def release(db: AsyncSession, meeting_id: int, scope_unit_id: int | None) -> list[LiveEvent]:
    """Each site back to its own slide: the pushes of ``scope_unit_id`` and of every unit below it
    (None: every push of the meeting — the chair's "each site its own slide")."""
    seq = await bump_seq(db, meeting_id)
    require_open(await state_of(db, meeting_id), "trình chiếu slide")
    stmt = delete(SlidePush).where(SlidePush.meeting_id == meeting_id)
    if scope_unit_id is not None:
        below = select(UnitClosure.descendant_id).where(UnitClosure.ancestor_id == scope_unit_id)
        stmt = stmt.where(SlidePush.scope_unit_id.in_(below))
    await db.execute(stmt.execution_options(synchronize_session=False))
    await db.flush()
    return [await _event(db, meeting_id, seq)]


async def showing(db: AsyncSession, unit_id: int, slide_unit_id: int) -> bool:
    """Whether some open meeting currently pushes ``slide_unit_id``'s slide to a scope above (or
    at) ``unit_id`` — what lets a site follow a slide outside its own subtree."""
    row = (await db.execute(
        select(SlidePush.meeting_id).join(Meeting, Meeting.id == SlidePush.meeting_id)
        .join(UnitClosure, UnitClosure.ancestor_id == SlidePush.scope_unit_id)
        .where(UnitClosure.descendant_id == unit_id, SlidePush.slide_unit_id == slide_unit_id,
               Meeting.state.in_([s.value for s in OPEN_STATES])).limit(1))).first()
    return row is not None


async def snapshot_parts(db: AsyncSession, meeting_id: int, unit_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """What a ``meeting:`` snapshot carries of the pushes, per subscribing unit: every active push
    and the unit's path (so the page picks what it shows, and follows later ``slide`` events)."""
    active = await pushes(db, meeting_id)
    return {uid: {"pushes": active, "path": path} for uid, path in (await paths(db, unit_ids)).items()}
