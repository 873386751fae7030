"""A province operator "calls" one of its communes during a meeting (issue #14): the commune's site
page shows at once that its province is calling it (to check its connection, to answer the roll
call). Nothing is stored but the audit line: a call is a live nudge, not a state of the meeting.

The event (kind ``call``) rides the meeting's bus topic like ``speaking``: unordered, addressed to
the commune's own ``meeting:`` subscription and to the ``rollcall:`` consoles above it."""

from __future__ import annotations

from typing import Any

from server.db import transaction
from server.live.wire import dumps
from server.services.access import actor_of
from server.services.deps import Deps
from sessions.errors import Forbidden
from sessions.meetings import OPEN_STATES, STATE_LABEL_VI, WrongState
from sessions.roles import Permission, Principal
from sessions.store import audit, live, units
from sessions.units import Level


async def call_site(deps: Deps, principal: Principal, meeting_id: int, unit: str | int, ip: str = "") -> dict[str, Any]:
    """Call ``unit`` (code or id): only the operator of the province the unit belongs to may, in an
    open meeting the unit takes part in. Returns the event's data."""
    from server.services import meetings as meeting_service

    if principal.kind != "user" or not principal.can(Permission.OPERATE_BRIDGE):
        raise Forbidden("Chỉ điểm cầu tỉnh được gọi điểm cầu xã của tỉnh mình", code="forbidden")
    async with transaction(deps.db) as db:
        meeting = await meeting_service.ensure_visible(db, principal, meeting_id)
        target = await (units.get_by_id(db, unit) if isinstance(unit, int) else units.get_by_code(db, unit))
        path = await units.ancestors(db, target.id)  # root … target
        province = next((u for u in reversed(path) if u.level is Level.PROVINCE), None)
        if target.id == principal.unit_id or province is None or province.id != principal.unit_id:
            raise Forbidden("Chỉ điểm cầu tỉnh của đơn vị này được gọi đơn vị này", code="out_of_scope")
        if meeting.state not in OPEN_STATES:
            raise WrongState(f"Hội nghị đang ở trạng thái '{STATE_LABEL_VI[meeting.state]}': chưa gọi được điểm cầu",
                             state=meeting.state.value)
        if not await live.participating(db, meeting_id, {target.id}):
            raise live.NotParticipant("Đơn vị này không tham dự hội nghị")
        await audit.record(db, actor_of(principal), "site_called", f"meeting:{meeting_id}", ip, unit=target.id)
    data = {"unit_id": target.id, "code": target.code, "name": target.name, "by": province.code,
            "by_name": province.name, "at": deps.clock().isoformat()}
    # Unordered (seq 0), like ``speaking``: to the commune's own page and the roll-call consoles from
    # it up to its province — the call is between the two; the chair's console is not told.
    below = [u.id for u in path[[u.id for u in path].index(province.id):]]
    header = {"m": meeting_id, "s": 0, "k": "call", "u": target.id, "p": below[::-1]}
    frame = {"type": "event", "meeting": meeting_id, "seq": 0, "kind": "call", "data": data}
    await deps.bus.publish(f"meeting.{meeting_id}", dumps(header) + b"\n" + dumps(frame))
    return data
