"""The one websocket endpoint ``/ws``: the loop that reads frames and answers each one.

Layers, as Home Assistant's ``websocket_api``: frames are read into typed messages
(server.live.messages), each message goes to its handler (server.live.handlers, which uses the
topic handlers of server.live.topics and the meeting actions of server.live.actions), and this
loop turns every outcome into exactly one answer frame — ``result``, ``pong`` or ``error`` —
with the socket kept open. A dependency that is away (server.outage) becomes ``unavailable``; any
other unexpected exception ``internal_error`` (logged with its traceback). Frames leave through the
connection's ``send``: the hub's bounded outbox.
Every message and error code is in docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import WSCloseCode, WSMessage, WSMsgType, web

from server.auth import SESSION_COOKIE
from server.http.contract import api
from server.live import origin
from server.live.frames import MAX_FRAME, BadMessage, check_shape, decode
from server.live.handlers import HANDLERS
from server.live.hub import CLOSE_ABUSE, Connection, Outbox
from server.live.messages import parse
from server.live.wire import dumps
from server.outage import RETRY_AFTER, UNAVAILABLE, is_outage
from server.services import recordings
from server.state import DEPS, HUB, PRESENCE, SETTINGS
from server.web_util import client_ip, json_error, require_principal
from sessions.errors import DomainError, ValidationFailed
from sessions.store.auth import digest

routes = web.RouteTableDef()
log = logging.getLogger("hoinghi.ws")
MAX_STRIKES = 50  # malformed or excess messages before the socket is closed with 4029
INTERNAL_ERROR = "Lỗi hệ thống. Vui lòng thử lại sau; sự cố đã được ghi nhận."


class RateLimited(ValidationFailed):
    code = "rate_limited"


def error_frame(request_id: object, exc: DomainError) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "id": request_id, "code": exc.code, "message": exc.message}
    if exc.detail.get("warning"):  # e.g. confirm_required: what the page asks the chair
        frame["detail"] = exc.detail
    return frame


@routes.get("/ws")
@api(summary="Websocket trực tiếp (docs/protocol.md); mã truy cập máy: chỉ phạm vi bridge", scopes={"bridge"})
async def websocket(request: web.Request) -> web.StreamResponse:
    principal = require_principal(request)
    refused = _origin_refusal(request, bearer=principal.kind == "machine")
    if refused is not None:
        log.warning("websocket handshake refused: origin", extra={"who": principal.name,
                                                                  "origin": request.headers.get("Origin", "-")[:200]})
        return json_error(403, "origin_refused", refused)
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=MAX_FRAME)
    await ws.prepare(request)
    hub = request.app[HUB]
    outbox = Outbox(ws, hub.queue_size, principal.name)
    login = digest(request.cookies.get(SESSION_COOKIE, "")) if principal.kind == "user" else ""
    conn = Connection(outbox.send, principal, client_ip(request), login)
    hub.connect(conn, outbox)
    try:
        async for frame in ws:
            if frame.type == WSMsgType.ERROR:
                break
            await receive(request.app, conn, frame)
            if conn.strikes > MAX_STRIKES:
                await ws.close(code=CLOSE_ABUSE, message="Quá nhiều tin nhắn sai hoặc quá nhanh".encode())
                break
    except Exception:  # never let an error reach the HTTP middleware: it would write a 500 onto the socket
        log.exception("websocket loop failed", extra={"who": principal.name})
    finally:
        await hub.disconnect(conn)
        await _leave_all(request.app, conn)
        if conn.recorded and ws.close_code != WSCloseCode.GOING_AWAY:  # a recording bridge, not our own shutdown
            # In the background: a socket's end never waits on the database (it may be the outage
            # that closed it), and the roll call's leaves above are not held up by it.
            task = asyncio.get_running_loop().create_task(_recordings_gone(request.app, conn))
            _CLEANUPS.add(task)
            task.add_done_callback(_CLEANUPS.discard)
    return ws


def _origin_refusal(request: web.Request, *, bearer: bool) -> str | None:
    """Why the page that asks may not open this socket (server.live.origin), or None."""
    settings = request.app[SETTINGS]
    own = origin.own_origin(request.headers, request.scheme, request.host, settings.trust_forwarded_for,
                            https=settings.cookie_secure)
    return origin.refusal(request.headers, own=own, allowed=origin.parse_allowed(settings.allowed_origins),
                          bearer=bearer)


async def receive(app: web.Application, conn: Connection, frame: WSMessage) -> None:
    """One frame → one answer. Never raises (but for cancellation): the socket stays open."""
    request_id: object = None
    kind: object = None
    try:
        if frame.type != WSMsgType.TEXT:
            raise BadMessage("Chỉ nhận tin nhắn JSON dạng văn bản")
        raw = decode(frame.data)
        check_shape(raw.get("id"), depth=2)  # an id is echoed: it must be one that can be written back
        request_id, kind = raw.get("id"), raw.get("type")
        check_shape(raw)
        if kind == "action" and not conn.actions.take():  # well-formed or not, an action spends a token
            raise RateLimited("Thao tác quá nhanh, vui lòng chờ giây lát")
        msg = parse(raw)
        answer = await HANDLERS[type(msg)](app, conn, msg)
        if answer is not None:
            _send(conn, {**answer, "id": request_id})
        elif "id" in raw:
            _send(conn, {"type": "result", "id": request_id, "ok": True})
    except DomainError as exc:
        if isinstance(exc, BadMessage | RateLimited):
            conn.strikes += 1
        _send(conn, error_frame(request_id, exc))
    except Exception as exc:
        if conn not in app[HUB].connections:  # the server is closing every socket: nobody to tell
            log.debug("websocket message cut short by shutdown", exc_info=True)
            return
        if is_outage(exc):  # the database or the bus is away: this action, not the socket, fails
            log.warning("websocket message: dependency unreachable", extra={
                "who": conn.principal.name, "type": str(kind)[:40], "error": f"{type(exc).__name__}: {exc}"[:300]})
            _send(conn, {"type": "error", "id": request_id, "code": "unavailable", "message": UNAVAILABLE,
                         "retry_after": RETRY_AFTER})
            return
        log.exception("websocket message failed", extra={"who": conn.principal.name, "type": str(kind)[:40]})
        _send(conn, {"type": "error", "id": request_id, "code": "internal_error", "message": INTERNAL_ERROR})


def _send(conn: Connection, frame: dict[str, Any]) -> None:
    """Queue an answer; one that cannot be serialised is logged and answered ``internal_error``."""
    try:
        data = dumps(frame)
    except (TypeError, ValueError, RecursionError):
        log.exception("websocket answer not serialisable", extra={"who": conn.principal.name})
        data = dumps({"type": "error", "id": None, "code": "internal_error", "message": INTERNAL_ERROR})
    conn.send(data)


_CLEANUPS: set[asyncio.Task[None]] = set()
RECORDINGS_GONE_WAIT = 30.0  # seconds the cleanup may take (a database coming back) before it gives up


async def _recordings_gone(app: web.Application, conn: Connection) -> None:
    """A bridge's socket closed: the recordings it was writing end as interrupted (issue #17)."""
    try:
        await asyncio.wait_for(recordings.bridge_gone(app[DEPS], conn.principal), RECORDINGS_GONE_WAIT)
    except Exception:
        log.exception("recording cleanup failed", extra={"who": conn.principal.name})


async def _leave_all(app: web.Application, conn: Connection) -> None:
    """Everything the socket joined is left when it closes: a site that vanished shows as a gap."""
    for meeting_id, unit_id in list(conn.joined):
        try:
            await asyncio.shield(app[PRESENCE].disconnect(meeting_id, unit_id))
        except Exception:
            log.exception("presence cleanup failed", extra={"meeting": meeting_id})
