"""Meetings: scheduling (participants resolved from subtree selectors), listing, state changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from sessions.errors import NotFound, ValidationFailed
from sessions.meetings import MeetingState, transition
from sessions.models import (
    AttendanceInterval,
    FloorTurn,
    Meeting,
    MeetingTransition,
    Participant,
    Unit,
    UnitClosure,
)
from sessions.units import Level
from sessions.values import reject_controls

MAX_TITLE = 300
MAX_AGENDA_ITEMS = 30
MAX_AGENDA_ITEM = 300


@dataclass(frozen=True, slots=True)
class MeetingView:
    id: int
    title: str
    agenda: list[str]
    scheduled_start: datetime
    chair_unit_id: int
    chair_unit_code: str
    chair_unit_name: str
    state: MeetingState
    seq: int
    floor_unit_id: int | None
    selectors: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "agenda": self.agenda,
                "scheduled_start": self.scheduled_start.isoformat(), "state": self.state.value,
                "chair_unit": {"id": self.chair_unit_id, "code": self.chair_unit_code, "name": self.chair_unit_name},
                "selectors": self.selectors}


_MCOLS = (Meeting.id, Meeting.title, Meeting.agenda, Meeting.scheduled_start, Meeting.chair_unit_id, Unit.code,
          Unit.name, Meeting.state, Meeting.seq, Meeting.floor_unit_id, Meeting.selectors)


def _mview(r: Any) -> MeetingView:
    return MeetingView(r[0], r[1], list(r[2] or []), r[3], r[4], r[5], r[6], MeetingState(r[7]), r[8], r[9],
                       list(r[10] or []))


@dataclass(frozen=True, slots=True)
class Selector:
    """``levels`` of the subtree of ``unit_code`` (the unit itself counts if its level is listed)."""

    unit_code: str
    levels: tuple[Level, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"unit": self.unit_code, "levels": [lv.value for lv in self.levels]}


def parse_selectors(raw: Any) -> list[Selector]:
    if not isinstance(raw, list) or not raw:
        raise ValidationFailed("Cần chọn ít nhất một nhóm đơn vị tham dự", code="participants_required",
                               field="participants")
    out = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("unit"), str):
            raise ValidationFailed("Nhóm đơn vị tham dự không hợp lệ", code="selector_invalid", field="participants")
        levels_raw = item.get("levels") or []
        try:
            levels = tuple(Level(v) for v in levels_raw)
        except (ValueError, TypeError):
            raise ValidationFailed(f"Cấp không hợp lệ: {levels_raw}", code="selector_invalid",
                                   field="participants") from None
        if not levels or Level.CENTRAL in levels:
            raise ValidationFailed("Chọn cấp tham dự: tỉnh, huyện và/hoặc xã", code="selector_invalid",
                                   field="participants")
        out.append(Selector(item["unit"].strip(), levels))
    return out


async def resolve_participants(db: AsyncSession, selectors: list[Selector]) -> dict[int, tuple[str, int | None]]:
    """unit id → (level, province id) for every unit the selectors name, in one query each."""
    prov = aliased(Unit)
    pc = aliased(UnitClosure)
    out: dict[int, tuple[str, int | None]] = {}
    for sel in selectors:
        root = (await db.execute(select(Unit.id).where(Unit.code == sel.unit_code))).scalar_one_or_none()
        if root is None:
            raise NotFound(f"Không tìm thấy đơn vị '{sel.unit_code}'", code="unit_not_found", field="participants")
        stmt = (
            select(Unit.id, Unit.level, prov.id)
            .join(UnitClosure, and_(UnitClosure.descendant_id == Unit.id, UnitClosure.ancestor_id == root))
            .outerjoin(pc, pc.descendant_id == Unit.id)
            .outerjoin(prov, and_(prov.id == pc.ancestor_id, prov.level == Level.PROVINCE.value))
            .where(Unit.level.in_([lv.value for lv in sel.levels]))
        )
        for uid, level, pid in (await db.execute(stmt)).all():
            if pid is not None or uid not in out:
                out[uid] = (level, pid)
    return out


def _clean_text(title: str, agenda: list[str]) -> tuple[str, list[str]]:
    title = reject_controls(title, "title", label="Tên hội nghị").strip()
    for item in agenda:
        reject_controls(item, "agenda", label="Chương trình hội nghị")
    if not title:
        raise ValidationFailed("Tên hội nghị không được để trống", code="title_required", field="title")
    if len(title) > MAX_TITLE:
        raise ValidationFailed(f"Tên hội nghị dài quá {MAX_TITLE} ký tự", code="title_too_long", field="title")
    items = [a.strip() for a in agenda if a.strip()]
    if len(items) > MAX_AGENDA_ITEMS or any(len(a) > MAX_AGENDA_ITEM for a in items):
        raise ValidationFailed(f"Chương trình tối đa {MAX_AGENDA_ITEMS} mục, mỗi mục ≤ {MAX_AGENDA_ITEM} ký tự",
                               code="agenda_invalid", field="agenda")
    return title, items


async def schedule(db: AsyncSession, *, title: str, agenda: list[str], start: datetime, chair_unit_id: int,
                   selectors: list[Selector], created_by_id: int | None) -> int:
    title, items = _clean_text(title, agenda)
    seats = await resolve_participants(db, selectors)
    seats.pop(chair_unit_id, None)
    if not seats:
        raise ValidationFailed("Không có đơn vị nào khớp với lựa chọn tham dự", code="participants_required",
                               field="participants")
    meeting = Meeting(title=title, agenda=items, scheduled_start=start, chair_unit_id=chair_unit_id,
                      selectors=[s.as_dict() for s in selectors], state=MeetingState.SCHEDULED.value, seq=0,
                      created_by_id=created_by_id)
    db.add(meeting)
    await db.flush()
    rows = [{"meeting_id": meeting.id, "unit_id": uid, "level": lv, "province_id": pid, "status": "not_called",
             "reason": "", "online": 0, "muted": False, "marked_by": "", "spoke_seconds": 0, "seq": 0}
            for uid, (lv, pid) in seats.items()]
    for start_i in range(0, len(rows), 2000):
        await db.execute(insert(Participant), rows[start_i:start_i + 2000])
    return meeting.id


async def get(db: AsyncSession, meeting_id: int) -> MeetingView:
    row = (await db.execute(select(*_MCOLS).join(Unit, Unit.id == Meeting.chair_unit_id)
                            .where(Meeting.id == meeting_id))).first()
    if row is None:
        raise NotFound("Không tìm thấy hội nghị", code="meeting_not_found")
    return _mview(row)


async def latest_titled(db: AsyncSession, title: str) -> int | None:
    """The newest meeting of that exact title (the demo finds what it made before)."""
    found = (await db.execute(select(Meeting.id).where(Meeting.title == title)
                              .order_by(Meeting.id.desc()))).scalars().first()
    return int(found) if found is not None else None


async def visible_to(db: AsyncSession, meeting_id: int, unit_id: int) -> bool:
    """A unit sees a meeting it chairs (or that is chaired below it), or in which it or a unit of
    its subtree takes part, or in which an ancestor of it takes part as a site's parent bridge."""
    sub = select(UnitClosure.descendant_id).where(UnitClosure.ancestor_id == unit_id)
    stmt = select(Meeting.id).where(Meeting.id == meeting_id, or_(
        Meeting.chair_unit_id.in_(sub),
        exists().where(Participant.meeting_id == Meeting.id, Participant.unit_id.in_(sub)),
    ))
    return (await db.execute(stmt)).first() is not None


async def list_for_unit(db: AsyncSession, unit_id: int, limit: int = 100) -> list[MeetingView]:
    sub = select(UnitClosure.descendant_id).where(UnitClosure.ancestor_id == unit_id)
    stmt = (select(*_MCOLS).join(Unit, Unit.id == Meeting.chair_unit_id)
            .where(or_(Meeting.chair_unit_id.in_(sub),
                       exists().where(Participant.meeting_id == Meeting.id, Participant.unit_id.in_(sub))))
            .order_by(Meeting.scheduled_start.desc()).limit(limit))
    return [_mview(r) for r in (await db.execute(stmt)).all()]


async def bump_seq(db: AsyncSession, meeting_id: int, count: int = 1) -> int:
    """Take the next sequence number (and, on PostgreSQL, the meeting row's lock) first, so every
    change of one meeting is serialised and numbered in commit order. ``count`` > 1 takes that
    many at once (a batch of changes) and returns the last. Every seq taken must be carried by at
    least one event (``give_back_seq`` when nothing changed): a meeting's seqs are contiguous."""
    result = await db.execute(update(Meeting).where(Meeting.id == meeting_id).values(seq=Meeting.seq + count)
                              .returning(Meeting.seq))
    seq = result.scalar_one_or_none()
    if seq is None:
        raise NotFound("Không tìm thấy hội nghị", code="meeting_not_found")
    return int(seq)


async def give_back_seq(db: AsyncSession, meeting_id: int) -> None:
    """A change that turned out to change nothing returns the seq it took (its transaction still
    holds the meeting row), so that every seq taken is carried by an event: a server process that
    sees a meeting's seqs skip ahead knows an event was lost (server.live.gaps)."""
    await db.execute(update(Meeting).where(Meeting.id == meeting_id).values(seq=Meeting.seq - 1))


async def change_state(db: AsyncSession, meeting_id: int, target: MeetingState, *, at: datetime,
                       by_user_id: int | None, by_name: str) -> tuple[int, MeetingState, MeetingState, list[int]]:
    """Apply a lifecycle transition (or raise IllegalTransition). Returns (seq, old, new, units whose
    seat changed: hands lowered when the meeting ends)."""
    seq = await bump_seq(db, meeting_id)
    current = MeetingState((await db.execute(select(Meeting.state).where(Meeting.id == meeting_id))).scalar_one())
    new = transition(current, target)
    values: dict[str, Any] = {"state": new.value}
    touched: list[int] = []
    if new in (MeetingState.CONCLUDED, MeetingState.CANCELLED):
        values["floor_unit_id"] = None
        await db.execute(update(AttendanceInterval).where(AttendanceInterval.meeting_id == meeting_id,
                                                          AttendanceInterval.left_at.is_(None)).values(left_at=at))
        holder = await close_floor_turn(db, meeting_id, at)
        touched = list((await db.execute(
            update(Participant).where(Participant.meeting_id == meeting_id, Participant.hand_at.is_not(None))
            .values(hand_at=None, seq=seq).returning(Participant.unit_id))).scalars().all())
        if holder is not None and holder not in touched:
            # Its speaking time just grew: its row changed, so it gets an event too.
            await db.execute(update(Participant).where(Participant.meeting_id == meeting_id,
                                                       Participant.unit_id == holder).values(seq=seq))
            touched.append(holder)
    await db.execute(update(Meeting).where(Meeting.id == meeting_id).values(**values))
    db.add(MeetingTransition(meeting_id=meeting_id, from_state=current.value, to_state=new.value, at=at,
                             by_user_id=by_user_id, by_name=by_name))
    return seq, current, new, touched


async def close_floor_turn(db: AsyncSession, meeting_id: int, at: datetime) -> int | None:
    """End the open floor turn (adding its length to the speaker's total); returns the speaker."""
    open_turn = (await db.execute(select(FloorTurn).where(FloorTurn.meeting_id == meeting_id,
                                                          FloorTurn.ended_at.is_(None)))).scalars().first()
    if open_turn is None:
        return None
    open_turn.ended_at = at
    spoke = max(0, int((at - open_turn.started_at).total_seconds()))
    await db.execute(update(Participant).where(Participant.meeting_id == meeting_id,
                                               Participant.unit_id == open_turn.unit_id)
                     .values(spoke_seconds=Participant.spoke_seconds + spoke))
    return open_turn.unit_id


async def transitions(db: AsyncSession, meeting_id: int) -> list[MeetingTransition]:
    stmt = select(MeetingTransition).where(MeetingTransition.meeting_id == meeting_id).order_by(MeetingTransition.id)
    return list((await db.execute(stmt)).scalars().all())
