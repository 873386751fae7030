"""Put a slide on every screen (issue #14): the chair shows one slide — the national ranking or a
province's — on every site page of its meeting, a province operator on the site pages of its own
subtree; "each site its own slide" releases it. Stored per meeting and scope unit
(sessions.store.slide_push) and announced as one ``slide`` event on the meeting's topic, staged
with the change (server.services.outbox), so every server process and every reconnecting page
gets the same state. Which push a site follows: sessions.slide_push.effective."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from server.db import transaction
from server.services import outbox
from server.services.access import actor_of
from server.services.deps import Deps
from server.services.meetings import ensure_visible, is_chair_of, messages
from sessions.errors import Forbidden
from sessions.roles import Permission, Principal
from sessions.store import audit, units
from sessions.store import meetings as meeting_store
from sessions.store import slide_push as store

REFUSED = "Chỉ chủ trì hội nghị, hoặc điểm cầu tỉnh cho các điểm cầu của mình, được trình chiếu slide"


@dataclass(frozen=True, slots=True)
class Authority:
    """On whose authority a push is made: the scope unit whose sites follow it, and whether it is
    the chair's (whose release ends every push of the meeting)."""

    scope_unit_id: int
    chair: bool


async def authority(db: AsyncSession, principal: Principal, meeting: meeting_store.MeetingView) -> Authority:
    """The chair pushes for the whole meeting (its chair unit), a bridge operator for its own unit's
    subtree; anyone else (site operators, viewers, machine tokens) is refused."""
    if principal.kind != "user":
        raise Forbidden(REFUSED, code="forbidden")
    if await is_chair_of(db, principal, meeting):
        return Authority(meeting.chair_unit_id, True)
    if principal.can(Permission.OPERATE_BRIDGE):
        return Authority(principal.unit_id, False)
    raise Forbidden(REFUSED, code="forbidden")


async def show(deps: Deps, principal: Principal, meeting_id: int, unit: str | None, ip: str = "") -> None:
    """Show ``unit``'s slide (a unit code; None: the scope's own — the national slide for the
    chair) on every site page under the caller's scope."""
    now = deps.clock()
    async with transaction(deps.db) as db:
        meeting = await ensure_visible(db, principal, meeting_id)
        who = await authority(db, principal, meeting)
        slide_id = who.scope_unit_id if unit is None else (await units.get_by_code(db, unit)).id
        if not await units.is_within(db, principal.unit_id, slide_id):
            raise Forbidden("Đơn vị của slide nằm ngoài phạm vi của bạn", code="out_of_scope")
        events = await store.push(db, meeting_id, who.scope_unit_id, slide_id, now, principal.name)
        await audit.record(db, actor_of(principal), "slide_pushed", f"meeting:{meeting_id}", ip,
                           scope=who.scope_unit_id, slide=slide_id)
        staged = await outbox.stage(db, messages(events))
    await outbox.deliver(deps, staged)


async def release(deps: Deps, principal: Principal, meeting_id: int, ip: str = "") -> None:
    """Each site back to its own slide: the chair ends every push of the meeting, a province
    operator those of its subtree."""
    async with transaction(deps.db) as db:
        meeting = await ensure_visible(db, principal, meeting_id)
        who = await authority(db, principal, meeting)
        events = await store.release(db, meeting_id, None if who.chair else who.scope_unit_id)
        await audit.record(db, actor_of(principal), "slide_released", f"meeting:{meeting_id}", ip,
                           scope=who.scope_unit_id)
        staged = await outbox.stage(db, messages(events))
    await outbox.deliver(deps, staged)
