"""The one websocket endpoint ``/ws``: subscribe to topics (scope-checked), join a meeting as a
site, and send actions. Every message and error code is in docs/protocol.md."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from server import kpi_slides, meeting_ops
from server.live.hub import CLOSE_ABUSE, Connection, Subscription
from server.state import CLOCK, DB, HUB, SNAPSHOTS
from server.views import kpi as kpi_views
from server.web_util import client_ip, require_principal
from sessions.errors import DomainError, Forbidden, ValidationFailed
from sessions.meetings import Attendance, MeetingState
from sessions.roles import Permission, Principal
from sessions.store import directive_views, live, units

routes = web.RouteTableDef()
log = logging.getLogger("hoinghi.ws")
MAX_MESSAGE = 16 * 1024
MAX_STRIKES = 50


class BadMessage(ValidationFailed):
    code = "bad_message"


def _int(msg: dict[str, Any], key: str) -> int:
    value = msg.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadMessage(f"Thiếu hoặc sai trường '{key}' (số nguyên)", field=key)
    return value


def _str(msg: dict[str, Any], key: str, default: str | None = None) -> str:
    value = msg.get(key, default)
    if not isinstance(value, str):
        raise BadMessage(f"Thiếu hoặc sai trường '{key}' (chuỗi)", field=key)
    return value


async def _subscribe(request: web.Request, conn: Connection, topic: str) -> None:
    """``meeting:<id>`` (state, floor, own seat), ``rollcall:<id>:<unit code>`` (seats of a subtree) or
    ``kpi:<unit code>`` (a unit's live KPI slide)."""
    app, p = request.app, conn.principal
    parts = topic.split(":")
    if parts[0] == "kpi" and len(parts) == 2:
        await _subscribe_slide(request, conn, topic, parts[1])
        return
    if parts[0] == "directives" and len(parts) == 2:
        await _subscribe_dashboard(request, conn, topic, parts[1])
        return
    try:
        meeting_id = int(parts[1])
    except (IndexError, ValueError):
        raise BadMessage(f"Chủ đề không hợp lệ: {topic[:60]}", code="bad_topic") from None
    if parts[0] == "meeting" and len(parts) == 2:
        # Batched with the other sites subscribing now: see meeting_snapshots.
        sub = Subscription(conn, topic, meeting_id, "meeting", p.unit_id)
        snap = await app[SNAPSHOTS].call(meeting_id, sub)
        conn.send_obj({"type": "snapshot", "topic": topic, "meeting": meeting_id, "seq": snap["seq"], "data": snap})
        sub.snapshot_sent(snap["seq"])
        return
    hub = app[HUB]
    async with app[DB]() as db:
        await meeting_ops.check_visible(db, p, meeting_id)
        if parts[0] == "rollcall" and len(parts) == 3:
            unit = await units.get_by_code(db, parts[2])
            if not await units.is_within(db, p.unit_id, unit.id):
                raise Forbidden("Không được theo dõi điểm danh ngoài phạm vi của mình", code="out_of_scope")
            if unit.id != p.unit_id and not (p.can(Permission.CHAIR_MEETINGS) or p.can(Permission.OPERATE_BRIDGE)):
                raise Forbidden("Chỉ chủ trì và điểm cầu cấp trên được theo dõi điểm danh", code="forbidden")
            sub = Subscription(conn, topic, meeting_id, "rollcall", unit.id)
        else:
            raise BadMessage(f"Chủ đề không hợp lệ: {topic[:60]}", code="bad_topic")
        hub.add(sub)  # registered before the snapshot is read: nothing can fall between the two
        try:
            snap = await live.rollcall_snapshot(db, meeting_id, sub.unit_id)
        except BaseException:
            hub.remove(sub)
            raise
    conn.send_obj({"type": "snapshot", "topic": topic, "meeting": meeting_id, "seq": snap["seq"], "data": snap})
    sub.snapshot_sent(snap["seq"])


async def _subscribe_slide(request: web.Request, conn: Connection, topic: str, code: str) -> None:
    """``kpi:<unit code>``: the unit's live KPI slide; the unit must lie in the caller's subtree."""
    p, hub = conn.principal, request.app[HUB]
    if not kpi_views.can_read(p):
        raise Forbidden("Bạn không có quyền xem số liệu chỉ tiêu", code="forbidden")
    async with request.app[DB]() as db:
        unit = await units.get_by_code(db, code)
        if not await units.is_within(db, p.unit_id, unit.id):
            raise Forbidden("Không được xem số liệu ngoài phạm vi của mình", code="out_of_scope")
        sub = Subscription(conn, topic, 0, "kpi", unit.id)
        hub.add(sub)  # registered before the snapshot is read: nothing can fall between the two
        try:
            snap = (await kpi_slides.slides(db, [unit.id]))[unit.id]
        except BaseException:
            hub.remove(sub)
            raise
    conn.send_obj({"type": "snapshot", "topic": topic, "unit": unit.code, "seq": 0, "data": snap})
    sub.snapshot_sent(-1)  # slides are whole: what arrived meanwhile is applied after the snapshot


async def _subscribe_dashboard(request: web.Request, conn: Connection, topic: str, code: str) -> None:
    """``directives:<unit code>``: the directive dashboard of a unit of the caller's subtree. The
    snapshot is the counts; each later event only says "counts moved" (re-read them over HTTP)."""
    p, hub = conn.principal, request.app[HUB]
    async with request.app[DB]() as db:
        unit = await units.get_by_code(db, code)
        if not await units.is_within(db, p.unit_id, unit.id):
            raise Forbidden("Không được theo dõi nhiệm vụ ngoài phạm vi của mình", code="out_of_scope")
        sub = Subscription(conn, topic, 0, "directives", unit.id)
        hub.add(sub)  # registered before the snapshot is read: nothing can fall between the two
        try:
            snap = await directive_views.dashboard(db, unit.id, request.app[CLOCK]())
        except BaseException:
            hub.remove(sub)
            raise
    conn.send_obj({"type": "snapshot", "topic": topic, "unit": unit.code, "seq": 0, "data": snap})
    sub.snapshot_sent(-1)


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
                        await meeting_ops.check_visible(db, sub.conn.principal, meeting_id)
                    except DomainError as exc:
                        results[i] = exc
                        continue
                hub.add(sub)  # registered before the snapshot is read: nothing can fall between the two
                added.append(sub)
            if added:
                state = await live.meeting_state(db, meeting_id)
                seats = await live.seat_rows(db, meeting_id, {s.unit_id for s in added})
    except BaseException:
        for sub in added:
            hub.remove(sub)
        raise
    out: list[dict[str, Any] | Exception] = []
    for sub, result in zip(subs, results, strict=True):
        out.append(result if result is not None else
                   {"seq": state["seq"], "meeting": state, "seat": seats.get(sub.unit_id)})
    return out


Action = Callable[[web.Request, Principal, int, dict[str, Any]], Awaitable[None]]


def _unit_ref(msg: dict[str, Any]) -> str | int:
    if isinstance(msg.get("unit_id"), int):
        return int(msg["unit_id"])
    return _str(msg, "unit")


ACTIONS: dict[str, Action] = {
    "raise_hand": lambda r, p, m, msg: meeting_ops.set_hand(r.app, p, m, True),
    "lower_hand": lambda r, p, m, msg: meeting_ops.set_hand(
        r.app, p, m, False, msg["unit_id"] if isinstance(msg.get("unit_id"), int) else None),
    "grant": lambda r, p, m, msg: meeting_ops.grant(r.app, p, m, _unit_ref(msg), client_ip(r),
                                                    confirm=msg.get("confirm") is True),
    "next": lambda r, p, m, msg: meeting_ops.next_speaker(r.app, p, m, client_ip(r)),
    "revoke": lambda r, p, m, msg: meeting_ops.revoke(r.app, p, m, client_ip(r)),
    "mute": lambda r, p, m, msg: meeting_ops.set_muted(
        r.app, p, m, True, _unit_ref(msg) if ("unit" in msg or "unit_id" in msg) else None, client_ip(r)),
    "unmute": lambda r, p, m, msg: meeting_ops.set_muted(
        r.app, p, m, False, _unit_ref(msg) if ("unit" in msg or "unit_id" in msg) else None, client_ip(r)),
    "mute_all": lambda r, p, m, msg: _none(meeting_ops.set_all_muted(r.app, p, m, True, client_ip(r))),
    "unmute_all": lambda r, p, m, msg: _none(meeting_ops.set_all_muted(r.app, p, m, False, client_ip(r))),
    "lower_all_hands": lambda r, p, m, msg: _none(meeting_ops.lower_all_hands(r.app, p, m)),
    "mark": lambda r, p, m, msg: _mark(r, p, m, msg),
    "state": lambda r, p, m, msg: _state(r, p, m, msg),
}


async def _none(work: Awaitable[object]) -> None:
    await work


async def _mark(request: web.Request, p: Principal, meeting_id: int, msg: dict[str, Any]) -> None:
    try:
        status = Attendance(_str(msg, "status"))
    except ValueError:
        raise BadMessage("Trạng thái điểm danh không hợp lệ", code="status_invalid", field="status") from None
    await meeting_ops.mark(request.app, p, meeting_id, _unit_ref(msg), status, _str(msg, "reason", ""),
                           client_ip(request))


async def _state(request: web.Request, p: Principal, meeting_id: int, msg: dict[str, Any]) -> None:
    try:
        target = MeetingState(_str(msg, "to"))
    except ValueError:
        raise BadMessage("Trạng thái hội nghị không hợp lệ", code="state_invalid", field="to") from None
    await meeting_ops.change_state(request.app, p, meeting_id, target, client_ip(request))


async def _present_unit(request: web.Request, conn: Connection, meeting_id: int, msg: dict[str, Any]) -> int:
    """Whose presence a ``join``/``leave`` is about: the caller's own site, or — for a bridge
    (machine token of scope ``bridge``) — ``unit``, a site of its subtree that it serves."""
    p = conn.principal
    if not (p.can(Permission.OPERATE_SITE) or p.can(Permission.CHAIR_MEETINGS) or p.has_scope("bridge")):
        raise Forbidden("Tài khoản không vận hành điểm cầu", code="forbidden")
    code = msg.get("unit")
    if code is None or code == p.unit_code:
        if f"meeting:{meeting_id}" not in conn.subs:  # subscribing checked it already
            async with request.app[DB]() as db:
                await meeting_ops.ensure_visible(db, p, meeting_id)
        return p.unit_id
    if not p.has_scope("bridge"):
        raise Forbidden("Chỉ điểm cầu (bridge) báo kết nối thay cho đơn vị khác", code="forbidden")
    if not isinstance(code, str):
        raise BadMessage("Trường 'unit' phải là mã đơn vị", field="unit")
    async with request.app[DB]() as db:
        await meeting_ops.ensure_visible(db, p, meeting_id)
        unit = await units.get_by_code(db, code)
        if not await units.is_within(db, p.unit_id, unit.id):
            raise Forbidden("Đơn vị nằm ngoài phạm vi của điểm cầu này", code="out_of_scope")
        if not await live.participating(db, meeting_id, {unit.id}):
            raise live.NotParticipant("Đơn vị không tham dự hội nghị này")
    return unit.id


async def _handle(request: web.Request, conn: Connection, msg: dict[str, Any]) -> None:
    kind = msg.get("type")
    if kind == "ping":
        conn.send_obj({"type": "pong", "id": msg.get("id")})
        return
    if kind == "subscribe":
        await _subscribe(request, conn, _str(msg, "topic"))
    elif kind == "unsubscribe":
        sub = conn.subs.get(_str(msg, "topic"))
        if sub is not None:
            request.app[HUB].remove(sub)
    elif kind in ("join", "leave"):
        meeting_id = _int(msg, "meeting")
        unit_id = await _present_unit(request, conn, meeting_id, msg)
        if kind == "join" and (meeting_id, unit_id) not in conn.joined:
            await meeting_ops.connect(request.app, meeting_id, unit_id)
            conn.joined.add((meeting_id, unit_id))
        elif kind == "leave" and (meeting_id, unit_id) in conn.joined:
            conn.joined.discard((meeting_id, unit_id))
            await meeting_ops.disconnect(request.app, meeting_id, unit_id)
    elif kind in ("stats", "speaking", "on_air"):
        from server import media

        async with request.app[DB]() as db:
            meeting_id, now = _int(msg, "meeting"), request.app[CLOCK]()
            if kind == "stats":
                await media.report_stats(request.app, db, conn.principal, meeting_id, msg.get("sites"), now)
            elif kind == "speaking":
                await media.report_speaking(request.app, db, conn.principal, meeting_id, msg.get("sites"), now)
            else:
                await media.report_on_air(request.app, db, conn.principal, meeting_id, msg, now)
    elif kind == "action":
        if not conn.actions.take():
            conn.strikes += 1
            raise ValidationFailed("Thao tác quá nhanh, vui lòng chờ giây lát", code="rate_limited")
        name = _str(msg, "action")
        action = ACTIONS.get(name)
        if action is None:
            raise BadMessage(f"Thao tác không xác định: {name[:40]}", code="unknown_action")
        await action(request, conn.principal, _int(msg, "meeting"), msg)
    else:
        raise BadMessage(f"Loại tin nhắn không xác định: {str(kind)[:40]}", code="unknown_type")
    if "id" in msg:
        conn.send_obj({"type": "result", "id": msg.get("id"), "ok": True})


@routes.get("/ws")
async def websocket(request: web.Request) -> web.StreamResponse:
    principal = require_principal(request)
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=MAX_MESSAGE)
    await ws.prepare(request)
    hub = request.app[HUB]
    conn = Connection(ws, principal, hub.queue_size)
    hub.connect(conn)
    try:
        async for raw in ws:
            if raw.type != WSMsgType.TEXT:
                if raw.type == WSMsgType.ERROR:
                    break
                conn.send_obj({"type": "error", "code": "bad_message",
                               "message": "Chỉ nhận tin nhắn JSON dạng văn bản"})
                continue
            msg_id = None
            try:
                msg = json.loads(raw.data)
                if not isinstance(msg, dict):
                    raise BadMessage("Tin nhắn phải là một đối tượng JSON")
                msg_id = msg.get("id")
                await _handle(request, conn, msg)
            except json.JSONDecodeError:
                conn.strikes += 1
                conn.send_obj({"type": "error", "code": "bad_message", "message": "Tin nhắn không phải JSON hợp lệ"})
            except DomainError as exc:
                if isinstance(exc, BadMessage):
                    conn.strikes += 1
                error: dict[str, Any] = {"type": "error", "id": msg_id, "code": exc.code, "message": exc.message}
                if exc.detail.get("warning"):  # e.g. confirm_required: what the page asks the chair
                    error["detail"] = exc.detail
                conn.send_obj(error)
            if conn.strikes > MAX_STRIKES:
                await ws.close(code=CLOSE_ABUSE, message="Quá nhiều tin nhắn sai hoặc quá nhanh".encode())
                break
    finally:
        await hub.disconnect(conn)
        for meeting_id, unit_id in list(conn.joined):
            try:
                await asyncio.shield(meeting_ops.disconnect(request.app, meeting_id, unit_id))
            except Exception:
                log.exception("presence cleanup failed", extra={"meeting": meeting_id})
    return ws
