"""Live meeting state: roll call, presence, hands, floor, mutes — and the events they emit.

Every change takes the meeting's next sequence number first (``bump_seq``), applies a rule from
``sessions.meetings`` and returns events carrying *whole rows* stamped with that number. A client
that loads a snapshot (stamped with the seq it saw) and applies later events row by row, keeping
the higher seq, ends with exactly a fresh snapshot — whatever order events arrive in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sessions.errors import NotFound, ValidationFailed
from sessions.meetings import (
    ATTENDANCE_LABEL_VI,
    STATE_LABEL_VI,
    TRANSITIONS,
    Attendance,
    MeetingState,
    MuteBy,
    Seat,
    is_present,
    require_open,
)
from sessions.models import AttendanceInterval, FloorTurn, Meeting, Participant, Unit, UnitClosure
from sessions.store.meetings import bump_seq


@dataclass(frozen=True, slots=True)
class LiveEvent:
    meeting_id: int
    seq: int
    kind: str  # "meeting" | "seat"
    data: dict[str, Any]
    unit_path: tuple[int, ...] = field(default=())  # seat events: the unit and all its ancestors

    def wire(self) -> dict[str, Any]:
        return {"type": "event", "meeting": self.meeting_id, "seq": self.seq, "kind": self.kind,
                "data": self.data}


class NotParticipant(ValidationFailed):
    code = "not_participant"


_SEAT_COLS = (Participant.unit_id, Unit.code, Unit.name, Participant.level, Participant.province_id,
              Participant.status, Participant.reason, Participant.online, Participant.hand_at, Participant.muted,
              Participant.spoke_seconds, Participant.seq, Participant.muted_by)


def _seat_dict(r: Any) -> dict[str, Any]:
    return {"unit_id": r[0], "code": r[1], "name": r[2], "level": r[3], "province_id": r[4], "status": r[5],
            "reason": r[6], "online": r[7], "hand_at": r[8].isoformat() if r[8] else None, "muted": bool(r[9]),
            "muted_by": r[12] or None, "spoke_seconds": r[10], "seq": r[11], "present": is_present(r[5])}


async def seat_row(db: AsyncSession, meeting_id: int, unit_id: int) -> dict[str, Any]:
    row = (await db.execute(select(*_SEAT_COLS).join(Unit, Unit.id == Participant.unit_id)
                            .where(Participant.meeting_id == meeting_id, Participant.unit_id == unit_id))).first()
    if row is None:
        raise NotParticipant("Đơn vị không tham dự hội nghị này", unit_id=unit_id)
    return _seat_dict(row)


async def seat_rows(db: AsyncSession, meeting_id: int, unit_ids: set[int]) -> dict[int, dict[str, Any]]:
    """The seats of these units (those that take part), in one query."""
    rows = (await db.execute(select(*_SEAT_COLS).join(Unit, Unit.id == Participant.unit_id).where(
        Participant.meeting_id == meeting_id, Participant.unit_id.in_(unit_ids)))).all()
    return {r[0]: _seat_dict(r) for r in rows}


async def participating(db: AsyncSession, meeting_id: int, unit_ids: set[int]) -> set[int]:
    """Which of these units take part in the meeting."""
    return set((await db.execute(select(Participant.unit_id).where(
        Participant.meeting_id == meeting_id, Participant.unit_id.in_(unit_ids)))).scalars())


async def meeting_state(db: AsyncSession, meeting_id: int) -> dict[str, Any]:
    row = (await db.execute(select(Meeting.id, Meeting.title, Meeting.state, Meeting.floor_unit_id, Meeting.seq)
                            .where(Meeting.id == meeting_id))).first()
    if row is None:
        raise NotFound("Không tìm thấy hội nghị", code="meeting_not_found")
    floor = None
    if row[3] is not None:
        u = (await db.execute(select(Unit.code, Unit.name).where(Unit.id == row[3]))).one()
        since = (await db.execute(select(FloorTurn.started_at).where(
            FloorTurn.meeting_id == meeting_id, FloorTurn.ended_at.is_(None)))).scalar_one_or_none()
        floor = {"unit_id": row[3], "code": u[0], "name": u[1], "since": since.isoformat() if since else None}
    state = MeetingState(row[2])
    from sessions.store import recordings  # its own area (issue #17): imported where it is used

    return {"id": row[0], "title": row[1], "state": state.value, "state_label": STATE_LABEL_VI[state],
            "next_states": sorted(TRANSITIONS[state]), "floor": floor, "seq": row[4],
            "recording": await recordings.status(db, meeting_id)}


async def _path(db: AsyncSession, unit_id: int) -> tuple[int, ...]:
    rows = await db.execute(select(UnitClosure.ancestor_id).where(UnitClosure.descendant_id == unit_id))
    return tuple(rows.scalars().all())


async def seat_event(db: AsyncSession, meeting_id: int, unit_id: int, seq: int) -> LiveEvent:
    return LiveEvent(meeting_id, seq, "seat", await seat_row(db, meeting_id, unit_id), await _path(db, unit_id))


async def meeting_event(db: AsyncSession, meeting_id: int, seq: int) -> LiveEvent:
    data = await meeting_state(db, meeting_id)
    data["seq"] = seq
    return LiveEvent(meeting_id, seq, "meeting", data)


async def state_of(db: AsyncSession, meeting_id: int) -> MeetingState:
    return MeetingState((await db.execute(select(Meeting.state).where(Meeting.id == meeting_id))).scalar_one())


async def load_seat(db: AsyncSession, meeting_id: int, unit_id: int) -> tuple[Participant, Seat]:
    p = (await db.execute(select(Participant).where(Participant.meeting_id == meeting_id,
                                                    Participant.unit_id == unit_id))).scalar_one_or_none()
    if p is None:
        raise NotParticipant("Đơn vị không tham dự hội nghị này", unit_id=unit_id)
    return p, seat_of(p)


def seat_of(p: Participant) -> Seat:
    return Seat(p.unit_id, Attendance(p.status), p.reason, p.online, p.hand_at, p.muted,
                MuteBy(p.muted_by) if p.muted and p.muted_by else None)


def store_seat(p: Participant, seat: Seat, seq: int, marked_by: str | None = None) -> None:
    p.status, p.reason, p.online, p.hand_at, p.muted, p.seq = (seat.status.value, seat.reason, seat.online,
                                                              seat.hand_at, seat.muted, seq)
    p.muted_by = seat.muted_by.value if seat.muted and seat.muted_by is not None else ""
    if marked_by is not None:
        p.marked_by = marked_by


async def connect(db: AsyncSession, meeting_id: int, unit_id: int, at: datetime) -> list[LiveEvent]:
    """A site's connection opened (page, or its bridge). Opens an attendance interval if it was offline."""
    seq = await bump_seq(db, meeting_id)
    require_open(await state_of(db, meeting_id), "kết nối")
    p, seat = await load_seat(db, meeting_id, unit_id)
    if seat.connect():
        db.add(AttendanceInterval(meeting_id=meeting_id, unit_id=unit_id, joined_at=at))
    store_seat(p, seat, seq)
    await db.flush()
    return [await seat_event(db, meeting_id, unit_id, seq)]


async def presence_many(db: AsyncSession, meeting_id: int, changes: list[tuple[int, bool]],
                        at: datetime) -> list[LiveEvent]:
    """``connect`` (True) and ``disconnect`` (False) for several connections of one meeting at once
    (sites joining or leaving together): the rows and intervals end as if each ran once per entry,
    in this order, but in a few statements for the whole batch. A unit listed twice gets one event,
    at its last seq."""
    if not changes:
        return []
    # One seq per unit, in the order of each unit's last change: a unit listed twice gets one event,
    # and every seq taken is carried by one (a meeting's seqs stay contiguous: server.live.gaps).
    order = list(dict.fromkeys(uid for uid, _up in reversed(changes)))[::-1]
    last = await bump_seq(db, meeting_id, len(order))
    seq_of = {uid: last - len(order) + 1 + i for i, uid in enumerate(order)}
    if any(up for _unit, up in changes):
        require_open(await state_of(db, meeting_id), "kết nối")
    wanted = {unit_id for unit_id, _up in changes}
    rows = {p.unit_id: p for p in (await db.execute(select(Participant).where(
        Participant.meeting_id == meeting_id, Participant.unit_id.in_(wanted)))).scalars()}
    missing = wanted - rows.keys()
    if missing:
        raise NotParticipant("Đơn vị không tham dự hội nghị này", unit_id=min(missing))
    seats = {uid: seat_of(p) for uid, p in rows.items()}
    opened: dict[int, AttendanceInterval] = {}  # intervals opened in this batch and still open
    created: list[AttendanceInterval] = []
    close_stored: set[int] = set()  # units whose interval opened before this batch closes
    for uid, up in changes:
        seat = seats[uid]
        if up:
            if seat.connect():
                opened[uid] = AttendanceInterval(meeting_id=meeting_id, unit_id=uid, joined_at=at)
                created.append(opened[uid])
        elif seat.disconnect():
            interval = opened.pop(uid, None)
            if interval is not None:
                interval.left_at = at
            else:
                close_stored.add(uid)
        store_seat(rows[uid], seat, seq_of[uid])
    if close_stored:  # before the new intervals are added, so it cannot close them
        await db.execute(update(AttendanceInterval).where(
            AttendanceInterval.meeting_id == meeting_id, AttendanceInterval.unit_id.in_(close_stored),
            AttendanceInterval.left_at.is_(None)).values(left_at=at))
    db.add_all(created)
    await db.flush()
    return await seat_events(db, meeting_id, wanted)


async def disconnect(db: AsyncSession, meeting_id: int, unit_id: int, at: datetime) -> list[LiveEvent]:
    seq = await bump_seq(db, meeting_id)
    p, seat = await load_seat(db, meeting_id, unit_id)
    if seat.disconnect():
        await db.execute(update(AttendanceInterval).where(
            AttendanceInterval.meeting_id == meeting_id, AttendanceInterval.unit_id == unit_id,
            AttendanceInterval.left_at.is_(None)).values(left_at=at))
    store_seat(p, seat, seq)
    await db.flush()
    return [await seat_event(db, meeting_id, unit_id, seq)]


async def mark(db: AsyncSession, meeting_id: int, unit_id: int, status: Attendance, reason: str,
               by_name: str) -> list[LiveEvent]:
    """In person, absent (reason required) or reset to not called — by the bridge operator or chair."""
    seq = await bump_seq(db, meeting_id)
    require_open(await state_of(db, meeting_id), "điểm danh")
    p, seat = await load_seat(db, meeting_id, unit_id)
    if status is Attendance.PRESENT_IN_PERSON:
        seat.mark_in_person()
    elif status is Attendance.ABSENT:
        seat.mark_absent(reason)
    elif status is Attendance.NOT_CALLED:
        seat.reset()
    else:
        raise ValidationFailed(f"Trạng thái '{ATTENDANCE_LABEL_VI[status]}' do kết nối tự ghi nhận, không đặt tay",
                               code="status_invalid", field="status")
    store_seat(p, seat, seq, marked_by=by_name)
    await db.flush()
    return [await seat_event(db, meeting_id, unit_id, seq)]


async def seat_events(db: AsyncSession, meeting_id: int, unit_ids: set[int]) -> list[LiveEvent]:
    """Seat events for many units in two queries (their rows and their paths)."""
    paths: dict[int, list[int]] = {}
    for uid, ancestor in (await db.execute(select(UnitClosure.descendant_id, UnitClosure.ancestor_id)
                                           .where(UnitClosure.descendant_id.in_(unit_ids)))).all():
        paths.setdefault(uid, []).append(ancestor)
    events = [LiveEvent(meeting_id, row["seq"], "seat", row, tuple(paths.get(uid, ())))
              for uid, row in (await seat_rows(db, meeting_id, unit_ids)).items()]
    return sorted(events, key=lambda e: (e.seq, e.data["unit_id"]))


async def meeting_snapshot(db: AsyncSession, meeting_id: int, own_unit_id: int | None) -> dict[str, Any]:
    state = await meeting_state(db, meeting_id)
    seat = None
    if own_unit_id is not None:
        try:
            seat = await seat_row(db, meeting_id, own_unit_id)
        except NotParticipant:
            seat = None
    return {"seq": state["seq"], "meeting": state, "seat": seat}


async def rollcall_snapshot(db: AsyncSession, meeting_id: int, within_unit_id: int) -> dict[str, Any]:
    seq = (await db.execute(select(Meeting.seq).where(Meeting.id == meeting_id))).scalar_one()
    rows = (await db.execute(
        select(*_SEAT_COLS).join(Unit, Unit.id == Participant.unit_id)
        .join(UnitClosure, UnitClosure.descendant_id == Participant.unit_id)
        .where(Participant.meeting_id == meeting_id, UnitClosure.ancestor_id == within_unit_id)
        .order_by(Unit.code))).all()
    seats = [_seat_dict(r) for r in rows]
    pids = {s["province_id"] for s in seats if s["province_id"] is not None}
    provinces = {}
    if pids:
        provinces = {str(i): {"code": c, "name": n} for i, c, n in (await db.execute(
            select(Unit.id, Unit.code, Unit.name).where(Unit.id.in_(pids)))).all()}
    return {"seq": seq, "seats": seats, "provinces": provinces}


async def attendance_rows(db: AsyncSession, meeting_id: int) -> list[dict[str, Any]]:
    """One row per participant with its intervals — the attendance export's source."""
    prov = {i: (c, n) for i, c, n in (await db.execute(
        select(Unit.id, Unit.code, Unit.name).where(Unit.level == "province"))).all()}
    intervals: dict[int, list[tuple[datetime, datetime | None]]] = {}
    for uid, joined, left in (await db.execute(
            select(AttendanceInterval.unit_id, AttendanceInterval.joined_at, AttendanceInterval.left_at)
            .where(AttendanceInterval.meeting_id == meeting_id).order_by(AttendanceInterval.joined_at))).all():
        intervals.setdefault(uid, []).append((joined, left))
    out = []
    for r in (await db.execute(select(*_SEAT_COLS).join(Unit, Unit.id == Participant.unit_id)
                               .where(Participant.meeting_id == meeting_id).order_by(Unit.code))).all():
        seat = _seat_dict(r)
        seat["province"] = prov.get(seat["province_id"], ("", ""))
        seat["intervals"] = intervals.get(seat["unit_id"], [])
        out.append(seat)
    return out
