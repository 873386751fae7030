"""Directive actions shared by the JSON API and the pages: each checks who is asking and what
they may reach, changes state in one transaction (audited by the store), then tells the
dashboards on the bus that counts moved.

Who may do what:
- record a conclusion and its directives: the meeting's chair, or an operating account of the
  chair's own unit (a secretary), while the meeting is live;
- break down, report progress, mark done: an operating account (chair, bridge or site operator)
  whose subtree holds the assignment's unit;
- read: anyone whose subtree holds the unit (``sessions.store.directive_views``).
An assignment out of reach answers as a missing one (404), as meetings do.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from server.db import transaction
from server.live.wire import dumps
from server.services import meetings as meeting_service
from server.services import outbox
from server.services.access import actor_of
from server.services.deps import Deps
from sessions.directives import DirectiveInput
from sessions.errors import Forbidden, NotFound
from sessions.roles import Permission, Principal
from sessions.store import directives as store
from sessions.store import units
from sessions.store.directives import Created, StoredFile

TOPIC = "directives.changed"
PATH_CAP = 2000  # beyond this many affected units an event goes to every dashboard (it carries no data)


def can_act(p: Principal) -> bool:
    return any(p.can(perm) for perm in (Permission.CHAIR_MEETINGS, Permission.OPERATE_BRIDGE, Permission.OPERATE_SITE))


async def stage(deps: Deps, db: AsyncSession, unit_ids: Iterable[int]) -> outbox.Staged:
    """Tell the dashboards of every ancestor of the affected units to refresh: staged in ``db``'s
    transaction, published once it committed (``outbox.deliver``). The frame carries
    no figures — a dashboard re-reads its own counts, scope-checked — so routing is an economy,
    never a safeguard."""
    tree = await units.unit_tree(db)
    path: set[int] = set()
    for uid in unit_ids:
        view = tree.get(uid)
        while view is not None and view.id not in path:
            path.add(view.id)
            view = tree.get(view.parent_id) if view.parent_id is not None else None
        if len(path) > PATH_CAP:
            path = set()
            break
    header = {"m": 0, "s": 0, "k": "directives", "u": None, "p": sorted(path)}
    frame = {"type": "event", "kind": "directives", "at": deps.clock().isoformat()}
    return await outbox.stage(db, [(TOPIC, dumps(header) + b"\n" + dumps(frame))])


async def _ensure_secretary(db: AsyncSession, p: Principal, meeting_id: int) -> None:
    meeting = await meeting_service.ensure_visible(db, p, meeting_id)
    if await meeting_service.is_chair_of(db, p, meeting):
        return
    if p.unit_id == meeting.chair_unit_id and can_act(p):
        return
    raise Forbidden("Chỉ chủ trì hội nghị (hoặc thư ký của đơn vị chủ trì) được ghi kết luận và giao nhiệm vụ",
                    code="chair_only")


async def record_conclusion(deps: Deps, p: Principal, meeting_id: int, text: str,
                            given: list[DirectiveInput]) -> tuple[int, list[Created]]:
    """A conclusion and the directives it carries, all in one transaction (all or nothing)."""
    now = deps.clock()
    async with transaction(deps.db) as db:
        await _ensure_secretary(db, p, meeting_id)
        actor = actor_of(p)
        cid = await store.add_conclusion(db, meeting_id, text, actor, now)
        created = [await store.create_directive(db, cid, g, actor=actor, now=now) for g in given]
        staged = await stage(deps, db, {u for c in created for u in c.unit_ids}) if created else outbox.Staged()
    await outbox.deliver(deps, staged)
    return cid, created


async def add_directive(deps: Deps, p: Principal, conclusion_id: int, given: DirectiveInput) -> Created:
    now = deps.clock()
    async with transaction(deps.db) as db:
        meeting_id = await store.conclusion_meeting(db, conclusion_id)
        try:
            await _ensure_secretary(db, p, meeting_id)
        except NotFound:
            raise NotFound("Không tìm thấy kết luận", code="conclusion_not_found") from None
        created = await store.create_directive(db, conclusion_id, given, actor=actor_of(p), now=now)
        staged = await stage(deps, db, created.unit_ids)
    await outbox.deliver(deps, staged)
    return created


async def _ensure_assignment(db: AsyncSession, p: Principal, assignment_id: int) -> int:
    """The assignment's unit, if the principal reaches it and may act on directives."""
    a = await store.get_assignment(db, assignment_id)
    if not await units.is_within(db, p.unit_id, a.unit_id):
        raise NotFound("Không tìm thấy nhiệm vụ", code="assignment_not_found")
    if not can_act(p):
        raise Forbidden("Tài khoản chỉ được xem, không được cập nhật nhiệm vụ", code="forbidden")
    return a.unit_id


async def break_down(deps: Deps, p: Principal, assignment_id: int, given: DirectiveInput) -> Created:
    now = deps.clock()
    async with transaction(deps.db) as db:
        await _ensure_assignment(db, p, assignment_id)
        created = await store.break_down(db, assignment_id, given, actor=actor_of(p), now=now)
        staged = await stage(deps, db, created.unit_ids)
    await outbox.deliver(deps, staged)
    return created


async def check_reporter(deps: Deps, p: Principal, assignment_id: int) -> None:
    """``report``'s permission check alone, for an upload: refused before its body is read."""
    async with deps.db() as db:
        await _ensure_assignment(db, p, assignment_id)


async def report(deps: Deps, p: Principal, assignment_id: int, text: str, percent: object,
                 files: list[StoredFile]) -> int:
    now = deps.clock()
    async with transaction(deps.db) as db:
        unit_id = await _ensure_assignment(db, p, assignment_id)
        report_id = await store.report_progress(db, assignment_id, text=text, percent=percent, files=files,
                                                actor=actor_of(p), now=now)
        staged = await stage(deps, db, [unit_id])
    await outbox.deliver(deps, staged)
    return report_id


async def complete(deps: Deps, p: Principal, assignment_id: int) -> None:
    now = deps.clock()
    async with transaction(deps.db) as db:
        unit_id = await _ensure_assignment(db, p, assignment_id)
        await store.complete(db, assignment_id, actor=actor_of(p), now=now)
        staged = await stage(deps, db, [unit_id])
    await outbox.deliver(deps, staged)
