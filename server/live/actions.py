"""Meeting actions sent over the live websocket (``{"type":"action", …}``): one named function
per action, taking its typed message (server.live.messages). Who may do what is decided by
server.meeting_service, exactly as for the same actions over HTTP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from server.live.hub import Connection
from server.live.messages import (
    Action,
    CallSite,
    ChangeState,
    Grant,
    LowerAllHands,
    LowerHand,
    Mark,
    Mute,
    MuteAll,
    NextSpeaker,
    OwnSlides,
    RaiseHand,
    Revoke,
    ShowSlide,
    Unmute,
    UnmuteAll,
)
from server.services import meetings as meeting_service
from server.services import site_calls, slide_push
from server.state import DEPS


async def raise_hand(app: web.Application, conn: Connection, msg: RaiseHand) -> None:
    await meeting_service.set_hand(app[DEPS], conn.principal, msg.meeting, True)


async def lower_hand(app: web.Application, conn: Connection, msg: LowerHand) -> None:
    await meeting_service.set_hand(app[DEPS], conn.principal, msg.meeting, False, msg.unit_id)


async def lower_all_hands(app: web.Application, conn: Connection, msg: LowerAllHands) -> None:
    await meeting_service.lower_all_hands(app[DEPS], conn.principal, msg.meeting)


async def grant(app: web.Application, conn: Connection, msg: Grant) -> None:
    await meeting_service.grant(app[DEPS], conn.principal, msg.meeting, msg.unit, conn.ip, confirm=msg.confirm)


async def next_speaker(app: web.Application, conn: Connection, msg: NextSpeaker) -> None:
    await meeting_service.next_speaker(app[DEPS], conn.principal, msg.meeting, conn.ip)


async def revoke(app: web.Application, conn: Connection, msg: Revoke) -> None:
    await meeting_service.revoke(app[DEPS], conn.principal, msg.meeting, conn.ip)


async def set_muted(app: web.Application, conn: Connection, msg: Mute) -> None:
    """``mute`` / ``unmute`` a site (``unit`` None: the caller's own)."""
    await meeting_service.set_muted(app[DEPS], conn.principal, msg.meeting, msg.muted, msg.unit, conn.ip)


async def set_all_muted(app: web.Application, conn: Connection, msg: MuteAll) -> None:
    """``mute_all`` / ``unmute_all`` (the chair)."""
    await meeting_service.set_all_muted(app[DEPS], conn.principal, msg.meeting, msg.muted, conn.ip)


async def mark(app: web.Application, conn: Connection, msg: Mark) -> None:
    await meeting_service.mark(app[DEPS], conn.principal, msg.meeting, msg.unit, msg.status, msg.reason, conn.ip)


async def change_state(app: web.Application, conn: Connection, msg: ChangeState) -> None:
    await meeting_service.change_state(app[DEPS], conn.principal, msg.meeting, msg.to, conn.ip)


async def call_site(app: web.Application, conn: Connection, msg: CallSite) -> None:
    await site_calls.call_site(app[DEPS], conn.principal, msg.meeting, msg.unit, conn.ip)


async def show_slide(app: web.Application, conn: Connection, msg: ShowSlide) -> None:
    await slide_push.show(app[DEPS], conn.principal, msg.meeting, msg.unit, conn.ip)


async def own_slides(app: web.Application, conn: Connection, msg: OwnSlides) -> None:
    await slide_push.release(app[DEPS], conn.principal, msg.meeting, conn.ip)


ActionHandler = Callable[[web.Application, Connection, Any], Awaitable[None]]
ACTIONS: dict[type[Action], ActionHandler] = {
    RaiseHand: raise_hand, LowerHand: lower_hand, LowerAllHands: lower_all_hands,
    Grant: grant, NextSpeaker: next_speaker, Revoke: revoke,
    Mute: set_muted, Unmute: set_muted, MuteAll: set_all_muted, UnmuteAll: set_all_muted,
    Mark: mark, ChangeState: change_state, ShowSlide: show_slide, OwnSlides: own_slides, CallSite: call_site,
}
