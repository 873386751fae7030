"""Subscriptions of the live websocket, one handler per topic kind: authorise, register, read the
snapshot, send it.

The order is the hub's guarantee (server.live.hub): a subscription is registered *before* its
snapshot is read and holds back what arrives meanwhile until ``snapshot_sent`` — called right
after the snapshot frame is queued, with no await in between — so a client gets the snapshot and
then every later event, none missed and none repeated. ``meeting:`` snapshots are read in batches
(``meeting_snapshots``): thousands of sites subscribe at once when a meeting opens.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

from aiohttp import web

from server.http import kpi as kpi_views
from server.live.hub import Connection, Hub, Subscription
from server.live.messages import DirectivesTopic, KpiTopic, MeetingTopic, RollcallTopic, Topic
from server.services import kpi_slides
from server.services import meetings as meeting_service
from server.state import CLOCK, DB, HUB, SNAPSHOTS
from sessions.errors import DomainError, Forbidden
from sessions.roles import Permission
from sessions.store import directive_views, live, slide_push, units

T = TypeVar("T")


async def subscribe(app: web.Application, conn: Connection, topic: Topic) -> None:
    """Follow ``topic``: the handler of its kind sends the snapshot, then events follow."""
    await SUBSCRIBE[type(topic)](app, conn, topic)


async def _watch(hub: Hub, sub: Subscription, read: Callable[[], Awaitable[T]]) -> T:
    """Register ``sub``, then read its snapshot; a failed read leaves nothing registered."""
    hub.add(sub)  # registered before the snapshot is read: nothing can fall between the two
    try:
        return await read()
    except BaseException:
        hub.remove(sub)
        raise


async def subscribe_meeting(app: web.Application, conn: Connection, topic: MeetingTopic) -> None:
    """``meeting:<id>``: state, floor holder and the caller's own seat. Batched with the other
    sites subscribing now (``meeting_snapshots`` checks visibility and registers)."""
    sub = Subscription(conn, topic.name, topic.meeting, "meeting", conn.principal.unit_id)
    snap = await app[SNAPSHOTS].call(topic.meeting, sub)
    conn.send_obj({"type": "snapshot", "topic": topic.name, "meeting": topic.meeting, "seq": snap["seq"],
                   "data": snap})
    app[HUB].snapshot_sent(sub, snap["seq"])


async def subscribe_rollcall(app: web.Application, conn: Connection, topic: RollcallTopic) -> None:
    """``rollcall:<id>:<unit code>``: every seat of that unit's subtree. The unit must lie in the
    caller's subtree; only chairs and bridge operators watch units other than their own."""
    p = conn.principal
    async with app[DB]() as db:
        await meeting_service.check_visible(db, p, topic.meeting)
        unit = await units.get_by_code(db, topic.unit)
        if not await units.is_within(db, p.unit_id, unit.id):
            raise Forbidden("Không được theo dõi điểm danh ngoài phạm vi của mình", code="out_of_scope")
        if unit.id != p.unit_id and not (p.can(Permission.CHAIR_MEETINGS) or p.can(Permission.OPERATE_BRIDGE)):
            raise Forbidden("Chỉ chủ trì và điểm cầu cấp trên được theo dõi điểm danh", code="forbidden")
        sub = Subscription(conn, topic.name, topic.meeting, "rollcall", unit.id)
        snap = await _watch(app[HUB], sub, partial(live.rollcall_snapshot, db, topic.meeting, unit.id))
    conn.send_obj({"type": "snapshot", "topic": topic.name, "meeting": topic.meeting, "seq": snap["seq"],
                   "data": snap})
    app[HUB].snapshot_sent(sub, snap["seq"])


async def subscribe_slide(app: web.Application, conn: Connection, topic: KpiTopic) -> None:
    """``kpi:<unit code>``: the unit's live KPI slide; the unit must lie in the caller's subtree."""
    p = conn.principal
    if not kpi_views.can_read(p):
        raise Forbidden("Bạn không có quyền xem số liệu chỉ tiêu", code="forbidden")
    async with app[DB]() as db:
        unit = await units.get_by_code(db, topic.unit)
        # beyond its subtree: only a slide pushed to it right now (server.services.slide_push)
        if not (await units.is_within(db, p.unit_id, unit.id) or await slide_push.showing(db, p.unit_id, unit.id)):
            raise Forbidden("Không được xem số liệu ngoài phạm vi của mình", code="out_of_scope")
        sub = Subscription(conn, topic.name, 0, "kpi", unit.id)
        slides = await _watch(app[HUB], sub, partial(kpi_slides.slides, db, [unit.id]))
    conn.send_obj({"type": "snapshot", "topic": topic.name, "unit": unit.code, "seq": 0, "data": slides[unit.id]})
    sub.snapshot_sent(-1)  # slides are whole: what arrived meanwhile is applied after the snapshot


async def subscribe_dashboard(app: web.Application, conn: Connection, topic: DirectivesTopic) -> None:
    """``directives:<unit code>``: the directive dashboard of a unit of the caller's subtree. The
    snapshot is the counts; each later event only says "counts moved" (re-read them over HTTP)."""
    p = conn.principal
    async with app[DB]() as db:
        unit = await units.get_by_code(db, topic.unit)
        if not await units.is_within(db, p.unit_id, unit.id):
            raise Forbidden("Không được theo dõi nhiệm vụ ngoài phạm vi của mình", code="out_of_scope")
        sub = Subscription(conn, topic.name, 0, "directives", unit.id)
        snap = await _watch(app[HUB], sub, partial(directive_views.dashboard, db, unit.id, app[CLOCK]()))
    conn.send_obj({"type": "snapshot", "topic": topic.name, "unit": unit.code, "seq": 0, "data": snap})
    sub.snapshot_sent(-1)


SubscribeHandler = Callable[[web.Application, Connection, Any], Awaitable[None]]
SUBSCRIBE: dict[type[Topic], SubscribeHandler] = {
    MeetingTopic: subscribe_meeting,
    RollcallTopic: subscribe_rollcall,
    KpiTopic: subscribe_slide,
    DirectivesTopic: subscribe_dashboard,
}


async def meeting_snapshots(app: web.Application, meeting_id: int,
                            subs: list[Subscription]) -> list[dict[str, Any] | Exception]:
    """Snapshots for the ``meeting:`` subscriptions of one meeting that arrived together (sites
    connecting at once): visibility checked, every subscription registered, *then* the meeting and
    all their seats read — a few queries for the whole batch. One snapshot or error per item."""
    hub = app[HUB]
    results: list[dict[str, Any] | Exception | None] = [None] * len(subs)
    added: list[Subscription] = []
    try:
        async with app[DB]() as db:
            taking_part = await live.participating(db, meeting_id, {s.unit_id for s in subs})
            for i, sub in enumerate(subs):
                if sub.conn not in hub.connections:  # closed while waiting: nothing to register
                    results[i] = ConnectionResetError("connection closed")
                    continue
                if sub.unit_id not in taking_part:  # e.g. the chair, or a bridge above the sites
                    try:
                        await meeting_service.check_visible(db, sub.conn.principal, meeting_id)
                    except DomainError as exc:
                        results[i] = exc
                        continue
                hub.add(sub)  # registered before the snapshot is read: nothing can fall between the two
                added.append(sub)
            if added:
                state = await live.meeting_state(db, meeting_id)
                seats = await live.seat_rows(db, meeting_id, {s.unit_id for s in added})
                slides = await slide_push.snapshot_parts(db, meeting_id, {s.unit_id for s in added})
    except BaseException:
        for sub in added:
            hub.remove(sub)
        raise
    out: list[dict[str, Any] | Exception] = []
    for sub, result in zip(subs, results, strict=True):
        out.append(result if result is not None else
                   {"seq": state["seq"], "meeting": state, "seat": seats.get(sub.unit_id),
                    "slides": slides.get(sub.unit_id)})
    return out
