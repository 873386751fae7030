"""The bridge's HTTP face: WHIP (publish) and WHEP (play), authorised by join tokens.

``POST /meetings/{id}/whip`` and ``POST /meetings/{id}/whep`` take an SDP offer
(``Content-Type: application/sdp``, ``Authorization: Bearer <join token>``) and answer 201 with
the SDP answer, a ``Location`` (``/sessions/{sid}``) to DELETE when leaving and the bridge's ICE
servers as ``Link`` headers (RFC 9725 §4.6). ``OPTIONS`` says ``Accept-Post: application/sdp``;
a wrong method gets 405 with ``Allow``. No ``PATCH``: see docs/protocol.md (trickle ICE).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from bridge import aiortc_compat, content, ice_servers, peers, preview
from bridge.errors import BridgeError, error_middleware
from bridge.link import BridgeLink
from bridge.recorder import BridgeRecordings
from bridge.room import BridgeConfig, BridgeState
from sessions import join_tokens
from sessions.join_tokens import JoinClaims

log = logging.getLogger("hoinghi.bridge")

STATE = web.AppKey("bridge_state", BridgeState)
LINK = web.AppKey("bridge_link", BridgeLink)
SDP = "application/sdp"


def _claims(request: web.Request, meeting: int | None = None) -> JoinClaims:
    state = request.app[STATE]
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not header[7:].strip():
        raise BridgeError(401, "unauthenticated", "Cần mã tham gia hội nghị")
    claims = join_tokens.check(state.config.key, header[7:].strip(), datetime.now(UTC))
    if claims.bridge != state.config.unit:
        raise BridgeError(403, "token_foreign", "Mã tham gia này không dùng cho điểm cầu này")
    if meeting is not None and claims.meeting != meeting:
        raise BridgeError(403, "token_foreign", "Mã tham gia này dành cho cuộc họp khác")
    return claims


def _meeting_id(request: web.Request) -> int:
    try:
        return int(request.match_info["meeting"])
    except ValueError:
        raise BridgeError(404, "meeting_not_found", "Không có cuộc họp này") from None


async def _offer(request: web.Request) -> str:
    if request.content_type != SDP:
        raise BridgeError(415, "sdp_required", "Nội dung phải là đề nghị SDP (application/sdp)")
    try:
        return await request.text()
    except UnicodeDecodeError:
        raise BridgeError(400, "sdp_invalid", "Đề nghị SDP không đúng định dạng") from None


def _created(request: web.Request, peer_id: str, answer: str) -> web.Response:
    location = str(request.app.router["peer"].url_for(sid=peer_id))
    headers = CIMultiDict({"Location": location})
    for server in request.app[STATE].config.ice_servers:
        headers.add("Link", ice_servers.link_value(ice_servers.parse(server)))
    return web.Response(status=201, text=answer, content_type=SDP, headers=headers)


def _content(request: web.Request) -> bool:
    """``?content=1``: the shared screen (a second video beside the programme), not the programme."""
    return request.query.get("content", "") in ("1", "true")


async def whip(request: web.Request) -> web.Response:
    meeting = _meeting_id(request)
    claims = _claims(request, meeting)
    if claims.view is not None:
        raise BridgeError(403, "preview_only", "Mã xem trước chỉ cho xem hình của một điểm cầu, không cho phát")
    if _content(request):
        peer = await content.publish_content(request.app[STATE], claims, await _offer(request))
    else:
        thumbnail = request.query.get("thumbnail", "") in ("1", "true")
        peer = await peers.publish(request.app[STATE], claims, await _offer(request), thumbnail=thumbnail)
    log.info("publish %s unit=%s role=%s meeting=%s", peer.id, claims.unit, claims.role, meeting)
    return _created(request, peer.id, peer.answer)


async def whep(request: web.Request) -> web.Response:
    meeting = _meeting_id(request)
    claims = _claims(request, meeting)
    layer = request.query.get("layer") or None
    if layer not in (None, "high", "low"):
        raise BridgeError(400, "layer_invalid", "Tham số 'layer' chỉ nhận 'high' hoặc 'low'")
    offer = await _offer(request)
    if claims.view is not None:
        peer = await preview.play_preview(request.app[STATE], claims, offer)
    elif _content(request):
        peer = await content.play_content(request.app[STATE], claims, offer)
    else:
        peer = await peers.play(request.app[STATE], claims, offer, layer=layer)
    log.info("play %s unit=%s meeting=%s%s%s", peer.id, claims.unit, meeting,
             f" preview={claims.view}" if claims.view else "", " content" if _content(request) else "")
    return _created(request, peer.id, peer.answer)


async def end_peer(request: web.Request) -> web.Response:
    state = request.app[STATE]
    claims = _claims(request)
    peer = state.peers.get(request.match_info["sid"])
    if peer is None:
        raise BridgeError(404, "session_not_found", "Không có phiên truyền hình này (có thể đã kết thúc)")
    if peer.unit != claims.unit or peer.meeting != claims.meeting:
        raise BridgeError(403, "session_not_yours", "Phiên truyền hình này không phải của điểm cầu bạn")
    await state.close_peer(peer, "its owner ended it (DELETE)")
    return web.Response(status=200)


async def healthz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response({"ok": True, "unit": state.config.unit, "sessions": len(state.peers),
                              "meetings": len(state.rooms)})


CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",  # authorised by the bearer join token, never by cookies
    "Access-Control-Allow-Methods": "POST, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Expose-Headers": "Location, Link",
    "Access-Control-Max-Age": "600",
}
OFFER_PATHS = ("/whip", "/whep")  # the endpoints that take a POSTed offer (RFC 9725's Accept-Post)


@web.middleware
async def cors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Browsers call the bridge from the server's pages (another origin): answer preflights and
    let them read the answer and its Location."""
    if request.method == "OPTIONS":
        return _options(request)
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(CORS_HEADERS)
        raise
    response.headers.update(CORS_HEADERS)
    return response


def _options(request: web.Request) -> web.Response:
    """A CORS preflight and RFC 9725's OPTIONS alike: the WHIP/WHEP endpoints say they take SDP."""
    headers = dict(CORS_HEADERS)
    if request.path.endswith(OFFER_PATHS):
        headers["Accept-Post"] = SDP
    return web.Response(status=204, headers=headers)


async def preflight(request: web.Request) -> web.Response:
    return _options(request)


def _recordings(state: BridgeState, link: BridgeLink) -> BridgeRecordings | None:
    """A bridge given a folder records its programme: the central one while the meeting is live and
    wanted, one with an upstream only while the chair names it (docs/operations.md, "Recording")."""
    config = state.config
    if not config.recordings_dir:
        return None
    channel = link.channel
    recordings = BridgeRecordings(lambda meeting: state.room(meeting).programme, Path(config.recordings_dir),
                                  channel.recording if channel is not None else None,
                                  segment_seconds=config.recording_segment_seconds,
                                  min_free_bytes=config.recording_min_free_mb * 1024 * 1024,
                                  unit=config.unit, when_named=bool(config.upstream_url))
    if channel is not None:
        channel.on_recording = recordings.on_meeting
    return recordings


def create_app(config: BridgeConfig) -> web.Application:
    aiortc_compat.install()
    app = web.Application(middlewares=[cors_middleware, error_middleware], client_max_size=64 * 1024)
    app[STATE] = BridgeState(config)
    app[LINK] = BridgeLink(app[STATE])
    recordings = _recordings(app[STATE], app[LINK])

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        app[LINK].start()
        yield
        if recordings is not None:  # the last segments closed and said while the channel is still up
            await recordings.close()
        await app[LINK].close()
        await app[STATE].close()

    app.cleanup_ctx.append(lifetime)
    app.router.add_post("/meetings/{meeting}/whip", whip)
    app.router.add_post("/meetings/{meeting}/whep", whep)
    app.router.add_delete("/sessions/{sid}", end_peer, name="peer")  # the WHIP/WHEP session URL (the protocol's name)
    app.router.add_get("/healthz", healthz)
    app.router.add_route("OPTIONS", "/{tail:.*}", preflight)
    return app


async def serve(config: BridgeConfig, host: str, port: int) -> None:
    """Run until cancelled; prints the bound URL (the port may have been 0)."""
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        sockets = site._server.sockets if site._server is not None else []  # type: ignore[attr-defined]
        bound = sockets[0].getsockname()[1] if sockets else port
        log.info("bridge %s listening on %s:%s", config.unit, host, bound)
        print(f"Điểm cầu {config.unit} nhận WHIP/WHEP tại http://{host}:{bound}  (Ctrl+C để dừng)", flush=True)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def run(config: BridgeConfig, host: str, port: int) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config, host, port))
