"""What each message of the live websocket does: one named function per message class
(server.live.messages), found in ``HANDLERS``. A handler returns the answer frame when the
message has one of its own (``pong``); otherwise the socket answers ``result`` to a request that
carries an ``id``. Errors are raised, never sent from here: the socket turns them into frames."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from server.live import topics
from server.live.actions import ACTIONS
from server.live.hub import Connection
from server.live.messages import (
    CascadeToken,
    Join,
    Leave,
    MeetingTopic,
    OnAir,
    Ping,
    RecordingReport,
    Speaking,
    Stats,
    Subscribe,
    Unsubscribe,
)
from server.services import media, recordings
from server.services import meetings as meeting_service
from server.state import CLOCK, DB, DEPS, HUB, PRESENCE
from sessions.errors import Forbidden
from sessions.roles import Permission
from sessions.store import live, units

Answer = dict[str, Any] | None
Handler = Callable[[web.Application, Connection, Any], Awaitable[Answer]]


async def ping(app: web.Application, conn: Connection, msg: Ping) -> Answer:
    return {"type": "pong"}


async def subscribe(app: web.Application, conn: Connection, msg: Subscribe) -> Answer:
    await topics.subscribe(app, conn, msg.topic)
    return None


async def unsubscribe(app: web.Application, conn: Connection, msg: Unsubscribe) -> Answer:
    sub = conn.subs.get(msg.topic)
    if sub is not None:
        app[HUB].remove(sub)
    return None


async def _present_unit(app: web.Application, conn: Connection, meeting_id: int, code: str | None) -> int:
    """Whose presence a ``join``/``leave`` is about: the caller's own site, or — for a bridge
    (machine token of scope ``bridge``) — ``unit``, a site of its subtree that it serves."""
    p = conn.principal
    if not (p.can(Permission.OPERATE_SITE) or p.can(Permission.CHAIR_MEETINGS) or p.has_scope("bridge")):
        raise Forbidden("Tài khoản không vận hành điểm cầu", code="forbidden")
    if code is None or code == p.unit_code:
        if MeetingTopic(meeting_id).name not in conn.subs:  # subscribing checked it already
            async with app[DB]() as db:
                await meeting_service.ensure_visible(db, p, meeting_id)
        return p.unit_id
    if not p.has_scope("bridge"):
        raise Forbidden("Chỉ điểm cầu (bridge) báo kết nối thay cho đơn vị khác", code="forbidden")
    async with app[DB]() as db:
        await meeting_service.ensure_visible(db, p, meeting_id)
        unit = await units.get_by_code(db, code)
        if not await units.is_within(db, p.unit_id, unit.id):
            raise Forbidden("Đơn vị nằm ngoài phạm vi của điểm cầu này", code="out_of_scope")
        if not await live.participating(db, meeting_id, {unit.id}):
            raise live.NotParticipant("Đơn vị không tham dự hội nghị này")
    return unit.id


async def join(app: web.Application, conn: Connection, msg: Join) -> Answer:
    """A site connected: roll call present online, an attendance interval opens (once per socket)."""
    unit_id = await _present_unit(app, conn, msg.meeting, msg.unit)
    if (msg.meeting, unit_id) not in conn.joined:
        await app[PRESENCE].connect(msg.meeting, unit_id)
        conn.joined.add((msg.meeting, unit_id))
    return None


async def leave(app: web.Application, conn: Connection, msg: Leave) -> Answer:
    unit_id = await _present_unit(app, conn, msg.meeting, msg.unit)
    if (msg.meeting, unit_id) in conn.joined:
        conn.joined.discard((msg.meeting, unit_id))
        await app[PRESENCE].disconnect(msg.meeting, unit_id)
    return None


async def stats(app: web.Application, conn: Connection, msg: Stats) -> Answer:
    async with app[DB]() as db:
        await media.report_stats(app[DEPS], db, conn.principal, msg.meeting, msg.sites, app[CLOCK]())
    return None


async def speaking(app: web.Application, conn: Connection, msg: Speaking) -> Answer:
    async with app[DB]() as db:
        await media.report_speaking(app[DEPS], db, conn.principal, msg.meeting, msg.sites, app[CLOCK]())
    return None


async def on_air(app: web.Application, conn: Connection, msg: OnAir) -> Answer:
    async with app[DB]() as db:
        await media.report_on_air(app[DEPS], db, conn.principal, msg.meeting, msg.fields, app[CLOCK]())
    return None


async def cascade_token(app: web.Application, conn: Connection, msg: CascadeToken) -> Answer:
    async with app[DB]() as db:
        data = await media.cascade_token(app[DEPS].settings, db, conn.principal, msg.meeting, msg.unit, msg.bridge,
                                         app[CLOCK]())
    return {"type": "result", "ok": True, "data": data}


async def recording(app: web.Application, conn: Connection, msg: RecordingReport) -> Answer:
    conn.recorded = True
    await recordings.report(app[DEPS], conn.principal, msg.meeting, msg.report)
    return None


HANDLERS: dict[type, Handler] = {
    Ping: ping, Subscribe: subscribe, Unsubscribe: unsubscribe, Join: join, Leave: leave,
    Stats: stats, Speaking: speaking, OnAir: on_air, CascadeToken: cascade_token, RecordingReport: recording,
    **ACTIONS,  # meeting actions answer nothing of their own
}
