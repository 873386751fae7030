"""The floor, hands and mutes of a live meeting — and the events they emit (see
:mod:`sessions.store.live` for the event and ordering rules they share with the roll call)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sessions.errors import ValidationFailed
from sessions.meetings import Floor, MuteBy, require_open
from sessions.models import FloorTurn, Meeting, Participant
from sessions.store.live import (
    LiveEvent,
    load_seat,
    meeting_event,
    seat_event,
    seat_events,
    seat_of,
    state_of,
    store_seat,
)
from sessions.store.meetings import bump_seq, close_floor_turn, give_back_seq


async def _floor(db: AsyncSession, meeting_id: int) -> Floor:
    holder = (await db.execute(select(Meeting.floor_unit_id).where(Meeting.id == meeting_id))).scalar_one()
    hands = (await db.execute(select(Participant.unit_id).where(
        Participant.meeting_id == meeting_id, Participant.hand_at.is_not(None))
        .order_by(Participant.hand_at, Participant.unit_id))).scalars().all()
    return Floor(holder, list(hands))


async def set_hand(db: AsyncSession, meeting_id: int, unit_id: int, up: bool, at: datetime) -> list[LiveEvent]:
    seq = await bump_seq(db, meeting_id)
    require_open(await state_of(db, meeting_id), "giơ tay")
    p, seat = await load_seat(db, meeting_id, unit_id)
    floor = await _floor(db, meeting_id)
    changed = floor.raise_hand(unit_id) if up else floor.lower_hand(unit_id)
    if not changed:
        await give_back_seq(db, meeting_id)
        return []
    seat.hand_at = at if up else None
    store_seat(p, seat, seq)
    await db.flush()
    return [await seat_event(db, meeting_id, unit_id, seq)]


async def _give_floor(db: AsyncSession, meeting_id: int, floor: Floor, previous: int | None, new: int | None,
                      seq: int, at: datetime, by_name: str) -> list[LiveEvent]:
    touched: list[int] = []
    if previous is not None and previous != new:
        await close_floor_turn(db, meeting_id, at)
        touched.append(previous)
    if new is not None and new != previous:
        db.add(FloorTurn(meeting_id=meeting_id, unit_id=new, started_at=at, granted_by=by_name))
        touched.append(new)
    await db.execute(update(Meeting).where(Meeting.id == meeting_id).values(floor_unit_id=floor.holder))
    for uid in touched:
        await db.execute(update(Participant).where(Participant.meeting_id == meeting_id, Participant.unit_id == uid)
                         .values(hand_at=None if uid == new else Participant.hand_at, seq=seq))
    await db.flush()
    events = [await meeting_event(db, meeting_id, seq)]
    events += [await seat_event(db, meeting_id, uid, seq) for uid in touched]
    return events


async def grant(db: AsyncSession, meeting_id: int, unit_id: int, at: datetime, by_name: str) -> list[LiveEvent]:
    """Give the floor to ``unit_id``. Granting is the chair's word that the site may speak: a mute
    the chair (or an operator) put on it is lifted; a site's own mute stays its own."""
    seq = await bump_seq(db, meeting_id)
    require_open(await state_of(db, meeting_id), "trao quyền phát biểu")
    p, seat = await load_seat(db, meeting_id, unit_id)  # must take part
    if seat.muted and seat.muted_by is not None and seat.muted_by is not MuteBy.SITE:
        seat.unmute(MuteBy.CHAIR)
        store_seat(p, seat, seq)
    floor = await _floor(db, meeting_id)
    previous = floor.grant(unit_id)
    events = await _give_floor(db, meeting_id, floor, previous, unit_id, seq, at, by_name)
    if previous == unit_id:  # granted again to the holder: _give_floor touched no seat
        events.append(await seat_event(db, meeting_id, unit_id, seq))
    return events


async def next_speaker(db: AsyncSession, meeting_id: int, at: datetime, by_name: str) -> list[LiveEvent]:
    seq = await bump_seq(db, meeting_id)
    require_open(await state_of(db, meeting_id), "trao quyền phát biểu")
    floor = await _floor(db, meeting_id)
    previous, new = floor.next()
    return await _give_floor(db, meeting_id, floor, previous, new, seq, at, by_name)


async def revoke(db: AsyncSession, meeting_id: int, at: datetime, by_name: str) -> list[LiveEvent]:
    seq = await bump_seq(db, meeting_id)
    require_open(await state_of(db, meeting_id), "thu hồi quyền phát biểu")
    floor = await _floor(db, meeting_id)
    previous = floor.revoke()
    if previous is None:
        raise ValidationFailed("Chưa có điểm cầu nào giữ quyền phát biểu", code="floor_empty")
    return await _give_floor(db, meeting_id, floor, previous, None, seq, at, by_name)


async def set_muted(db: AsyncSession, meeting_id: int, unit_id: int, muted: bool,
                    by: MuteBy = MuteBy.CHAIR) -> list[LiveEvent]:
    """Mute or unmute one site on ``by``'s authority (``MuteBy``: a higher authority's mute is
    lifted only by it). No event when nothing changed."""
    seq = await bump_seq(db, meeting_id)
    require_open(await state_of(db, meeting_id), "tắt/bật tiếng")
    p, seat = await load_seat(db, meeting_id, unit_id)
    changed = seat.mute(by) if muted else seat.unmute(by)
    if not changed:
        await give_back_seq(db, meeting_id)
        return []
    store_seat(p, seat, seq)
    await db.flush()
    return [await seat_event(db, meeting_id, unit_id, seq)]


async def set_all_muted(db: AsyncSession, meeting_id: int, muted: bool) -> list[LiveEvent]:
    """The chair's "mute all" (every site but the floor holder) or "unmute all" (lifts the chair's
    own mutes; a site that muted itself, or was muted by its operator, stays as it chose)."""
    seq = await bump_seq(db, meeting_id)
    require_open(await state_of(db, meeting_id), "tắt/bật tiếng")
    holder = (await db.execute(select(Meeting.floor_unit_id).where(Meeting.id == meeting_id))).scalar_one()
    query = select(Participant).where(Participant.meeting_id == meeting_id)
    if muted:
        query = query.where(Participant.muted_by != MuteBy.CHAIR.value)
        if holder is not None:
            query = query.where(Participant.unit_id != holder)
    else:
        query = query.where(Participant.muted_by == MuteBy.CHAIR.value)
    touched = []
    for p in (await db.execute(query)).scalars():
        seat = seat_of(p)
        if seat.mute(MuteBy.CHAIR) if muted else seat.unmute(MuteBy.CHAIR):
            store_seat(p, seat, seq)
            touched.append(p.unit_id)
    if not touched:
        await give_back_seq(db, meeting_id)
        return []
    await db.flush()
    return await seat_events(db, meeting_id, set(touched))


async def lower_all_hands(db: AsyncSession, meeting_id: int) -> list[LiveEvent]:
    """The chair clears the hand queue."""
    seq = await bump_seq(db, meeting_id)
    require_open(await state_of(db, meeting_id), "hạ tay")
    raised = set((await db.execute(select(Participant.unit_id).where(
        Participant.meeting_id == meeting_id, Participant.hand_at.is_not(None)))).scalars())
    if not raised:
        await give_back_seq(db, meeting_id)
        return []
    await db.execute(update(Participant).where(Participant.meeting_id == meeting_id,
                                               Participant.unit_id.in_(raised)).values(hand_at=None, seq=seq))
    await db.flush()
    return await seat_events(db, meeting_id, raised)
