"""Meeting actions shared by the pages, the JSON API and the websocket: each checks who is
asking and what they may reach, changes state in one transaction, audits privileged acts, then
publishes the resulting events on the bus — staged in the same transaction (server.services.outbox),
so an event the bus could not take is published later, not lost."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from server.db import transaction
from server.live.wire import encode
from server.services import outbox
from server.services.access import actor_of
from server.services.deps import Deps
from sessions.errors import Conflict, Forbidden, NotFound
from sessions.meetings import Attendance, MeetingState, MuteBy
from sessions.roles import Permission, Principal
from sessions.store import audit, floor, kpi_snapshots, live, presence, units
from sessions.store import meetings as store
from sessions.store import minutes as minutes_store
from sessions.store.live import LiveEvent


def messages(events: list[LiveEvent]) -> list[tuple[str, bytes]]:
    return [(f"meeting.{event.meeting_id}", encode(event)) for event in events]


async def publish(deps: Deps, events: list[LiveEvent]) -> None:
    """Publish directly, without the outbox (a caller whose events are not staged)."""
    bus = deps.bus
    for topic, message in messages(events):
        await bus.publish(topic, message)


async def ensure_visible(db: AsyncSession, principal: Principal, meeting_id: int) -> store.MeetingView:
    meeting = await store.get(db, meeting_id)
    await check_visible(db, principal, meeting_id)
    return meeting


async def check_visible(db: AsyncSession, principal: Principal, meeting_id: int) -> None:
    """``ensure_visible`` without loading the meeting: one query (a missing meeting is not visible)."""
    if not await store.visible_to(db, meeting_id, principal.unit_id):
        # Same answer as a missing meeting: do not reveal meetings outside one's reach.
        raise NotFound("Không tìm thấy hội nghị", code="meeting_not_found")


async def is_chair_of(db: AsyncSession, principal: Principal, meeting: store.MeetingView) -> bool:
    return principal.can(Permission.CHAIR_MEETINGS) and await units.is_within(db, principal.unit_id,
                                                                               meeting.chair_unit_id)


async def ensure_chair(db: AsyncSession, principal: Principal, meeting_id: int) -> store.MeetingView:
    meeting = await ensure_visible(db, principal, meeting_id)
    if not await is_chair_of(db, principal, meeting):
        raise Forbidden("Chỉ chủ trì hội nghị được thực hiện thao tác này", code="chair_only")
    return meeting


async def schedule(deps: Deps, principal: Principal, *, title: str, agenda: list[str], start: datetime,
                   selectors: list[store.Selector], ip: str = "") -> int:
    if not principal.can(Permission.CHAIR_MEETINGS):
        raise Forbidden("Chỉ chủ trì được lên lịch hội nghị", code="chair_only")
    async with transaction(deps.db) as db:
        for sel in selectors:
            unit = await units.get_by_code(db, sel.unit_code)
            if not await units.is_within(db, principal.unit_id, unit.id):
                raise Forbidden(f"Đơn vị '{sel.unit_code}' nằm ngoài phạm vi của bạn", code="out_of_scope")
        meeting_id = await store.schedule(db, title=title, agenda=agenda, start=start,
                                          chair_unit_id=principal.unit_id, selectors=selectors,
                                          created_by_id=principal.id if principal.kind == "user" else None)
        await audit.record(db, actor_of(principal), "meeting_scheduled", f"meeting:{meeting_id}", ip, title=title)
    return meeting_id


async def change_state(deps: Deps, principal: Principal, meeting_id: int, target: MeetingState,
                       ip: str = "") -> MeetingState:
    now = deps.clock()
    async with transaction(deps.db) as db:
        await ensure_chair(db, principal, meeting_id)
        seq, old, new, touched = await store.change_state(db, meeting_id, target, at=now, by_user_id=principal.id,
                                                          by_name=principal.name)
        if new in (MeetingState.LIVE, MeetingState.CONCLUDED):
            # The KPI record of the meeting: what the slides showed at the start and at the end.
            await kpi_snapshots.freeze(db, meeting_id, new.value, now)
        if new is MeetingState.CONCLUDED:
            # Its record freezes into the minutes (version 1, published), in the same transaction.
            await minutes_store.freeze(db, meeting_id, now, principal.name)
        events = [await live.meeting_event(db, meeting_id, seq)]
        events += [await live.seat_event(db, meeting_id, uid, seq) for uid in touched]
        await audit.record(db, actor_of(principal), "meeting_state", f"meeting:{meeting_id}", ip, old=old.value,
                           new=new.value)
        staged = await outbox.stage(db, messages(events))
    await outbox.deliver(deps, staged)
    return new


async def _unit_id(db: AsyncSession, code_or_id: str | int) -> int:
    if isinstance(code_or_id, int):
        return code_or_id
    return (await units.get_by_code(db, code_or_id)).id


async def mark(deps: Deps, principal: Principal, meeting_id: int, unit: str | int, status: Attendance,
               reason: str, ip: str = "") -> None:
    """Roll call by hand: the chair for any site, a bridge operator for sites of its subtree."""
    async with transaction(deps.db) as db:
        meeting = await ensure_visible(db, principal, meeting_id)
        uid = await _unit_id(db, unit)
        chair = await is_chair_of(db, principal, meeting)
        if not chair and not (principal.can(Permission.OPERATE_BRIDGE)
                              and await units.is_within(db, principal.unit_id, uid)):
            raise Forbidden("Chỉ chủ trì hoặc điểm cầu cấp trên được điểm danh đơn vị này", code="forbidden")
        events = await live.mark(db, meeting_id, uid, status, reason, principal.name)
        await audit.record(db, actor_of(principal), "rollcall_marked", f"meeting:{meeting_id}", ip, unit=uid,
                           status=status.value, reason=reason.strip()[:200])
        staged = await outbox.stage(db, messages(events))
    await outbox.deliver(deps, staged)


def _site_unit(principal: Principal) -> int:
    if not (principal.can(Permission.OPERATE_SITE) or principal.has_scope("bridge")):
        raise Forbidden("Tài khoản không vận hành điểm cầu", code="forbidden")
    return principal.unit_id


async def set_hand(deps: Deps, principal: Principal, meeting_id: int, up: bool,
                   unit_id: int | None = None) -> None:
    """A site raises or lowers its own hand; the chair may lower anyone's."""
    now = deps.clock()
    async with transaction(deps.db) as db:
        meeting = await ensure_visible(db, principal, meeting_id)
        if unit_id is not None and unit_id != principal.unit_id:
            if up or not await is_chair_of(db, principal, meeting):
                raise Forbidden("Chỉ được giơ/hạ tay cho điểm cầu của mình", code="forbidden")
            target = unit_id
        else:
            target = _site_unit(principal)
        events = await floor.set_hand(db, meeting_id, target, up, now)
        staged = await outbox.stage(db, messages(events))
    await outbox.deliver(deps, staged)


class NotConnected(Conflict):
    """The floor would go to a site with no connection: the programme would keep the chair's
    picture. The chair confirms (``confirm``) to grant it anyway."""

    code = "confirm_required"


async def grant(deps: Deps, principal: Principal, meeting_id: int, unit: str | int, ip: str = "",
                confirm: bool = False) -> None:
    now = deps.clock()
    async with transaction(deps.db) as db:
        await ensure_chair(db, principal, meeting_id)
        uid = await _unit_id(db, unit)
        if not confirm:
            seat = (await live.seat_rows(db, meeting_id, {uid})).get(uid)
            if seat is not None and not seat["online"]:
                raise NotConnected(f"{seat['name']} chưa kết nối: chương trình vẫn phát hình chủ trì cho đến khi "
                                   "điểm cầu vào. Vẫn trao quyền phát biểu?", warning="not_connected",
                                   unit=seat["code"])
        events = await floor.grant(db, meeting_id, uid, now, principal.name)
        await audit.record(db, actor_of(principal), "floor_granted", f"meeting:{meeting_id}", ip, unit=uid)
        staged = await outbox.stage(db, messages(events))
    await outbox.deliver(deps, staged)


async def next_speaker(deps: Deps, principal: Principal, meeting_id: int, ip: str = "") -> None:
    now = deps.clock()
    async with transaction(deps.db) as db:
        await ensure_chair(db, principal, meeting_id)
        events = await floor.next_speaker(db, meeting_id, now, principal.name)
        await audit.record(db, actor_of(principal), "floor_granted", f"meeting:{meeting_id}", ip, unit="next")
        staged = await outbox.stage(db, messages(events))
    await outbox.deliver(deps, staged)


async def revoke(deps: Deps, principal: Principal, meeting_id: int, ip: str = "") -> None:
    now = deps.clock()
    async with transaction(deps.db) as db:
        await ensure_chair(db, principal, meeting_id)
        events = await floor.revoke(db, meeting_id, now, principal.name)
        await audit.record(db, actor_of(principal), "floor_revoked", f"meeting:{meeting_id}", ip)
        staged = await outbox.stage(db, messages(events))
    await outbox.deliver(deps, staged)


async def _mute_authority(db: AsyncSession, principal: Principal, meeting: store.MeetingView,
                          target: int) -> MuteBy:
    """On whose authority ``principal`` mutes or unmutes ``target``: the chair's (any site of its
    meeting), a province operator's (a site below its own unit), a site's own (its own unit).
    Viewers and machine tokens never."""
    if principal.kind != "user":
        raise Forbidden("Mã truy cập máy không được tắt/bật tiếng điểm cầu", code="forbidden")
    if await is_chair_of(db, principal, meeting):
        return MuteBy.CHAIR
    if target == principal.unit_id and principal.can(Permission.OPERATE_SITE):
        return MuteBy.SITE
    if principal.can(Permission.OPERATE_BRIDGE) and await units.is_within(db, principal.unit_id, target):
        return MuteBy.OPERATOR
    if not (principal.can(Permission.OPERATE_SITE) or principal.can(Permission.OPERATE_BRIDGE)):
        raise Forbidden("Tài khoản không vận hành điểm cầu", code="forbidden")
    raise Forbidden("Chỉ chủ trì hoặc điểm cầu cấp trên được tắt/bật tiếng điểm cầu này", code="chair_only")


async def set_muted(deps: Deps, principal: Principal, meeting_id: int, muted: bool,
                    unit: str | int | None = None, ip: str = "") -> None:
    """Mute or unmute a site (``unit``; None: the caller's own). Who may lift a mute follows
    ``sessions.meetings.MuteBy``; the bridges drop a muted site's sound (they follow the roll call)."""
    async with transaction(deps.db) as db:
        meeting = await ensure_visible(db, principal, meeting_id)
        target = principal.unit_id if unit is None else await _unit_id(db, unit)
        by = await _mute_authority(db, principal, meeting, target)
        events = await floor.set_muted(db, meeting_id, target, muted, by)
        if events and by is not MuteBy.SITE:
            await audit.record(db, actor_of(principal), "site_muted" if muted else "site_unmuted",
                               f"meeting:{meeting_id}", ip, unit=target)
        staged = await outbox.stage(db, messages(events))
    await outbox.deliver(deps, staged)


async def set_all_muted(deps: Deps, principal: Principal, meeting_id: int, muted: bool,
                        ip: str = "") -> int:
    """The chair's mute all (but the floor holder) / unmute all (its own mutes). How many changed."""
    async with transaction(deps.db) as db:
        await ensure_chair(db, principal, meeting_id)
        events = await floor.set_all_muted(db, meeting_id, muted)
        await audit.record(db, actor_of(principal), "all_muted" if muted else "all_unmuted",
                           f"meeting:{meeting_id}", ip, count=len(events))
        staged = await outbox.stage(db, messages(events))
    await outbox.deliver(deps, staged)
    return len(events)


async def lower_all_hands(deps: Deps, principal: Principal, meeting_id: int) -> int:
    async with transaction(deps.db) as db:
        await ensure_chair(db, principal, meeting_id)
        events = await floor.lower_all_hands(db, meeting_id)
        staged = await outbox.stage(db, messages(events))
    await outbox.deliver(deps, staged)
    return len(events)


async def write_presence(deps: Deps, meeting_id: int, counts: dict[int, int], at: datetime | None = None) -> None:
    """How many connections of these sites of one meeting this process holds (idempotent), as of
    ``at`` (now by default; earlier for a leave that could not be written when it happened)."""
    at = at or deps.clock()
    async with transaction(deps.db) as db:
        events = await presence.hold(db, deps.instance, meeting_id, counts, at)
        staged = await outbox.stage(db, messages(events))
    await outbox.deliver(deps, staged)
