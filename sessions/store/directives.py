"""Conclusions and directives: record, assign, break down, report progress, mark done.

Every function checks its input in full before it writes anything, and runs inside the
caller's transaction: a refusal leaves nothing half-applied. Who may act is the caller's
business (``server.directive_service``); what a directive may reach is checked here: assignees lie
in the assigner's subtree, a breakdown strictly below the broken-down assignment's unit. Every
change is audited with what it was before and what it became.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sessions.directives import (
    AssigneeRole,
    AssigneeSpec,
    DirectiveInput,
    assignee_roles,
    bucket,
    check_can_complete,
    check_deadline,
    check_percent,
    clean_text,
    due_at,
)
from sessions.errors import Conflict, Forbidden, NotFound
from sessions.meetings import STATE_LABEL_VI, MeetingState, WrongState
from sessions.models import Assignment, Attachment, Conclusion, Directive, Meeting, ProgressReport
from sessions.store import audit, units
from sessions.store.audit import Actor
from sessions.unit_tree import UnitTree
from sessions.units import Level


class AssignmentDone(Conflict):
    code = "assignment_done"


def _not_found_assignment() -> NotFound:
    return NotFound("Không tìm thấy nhiệm vụ", code="assignment_not_found")


@dataclass(frozen=True, slots=True)
class StoredFile:
    """An attachment already written to disk (see ``server.http.attachments``)."""

    filename: str
    content_type: str
    size: int
    sha256: str
    storage_path: str


@dataclass(frozen=True, slots=True)
class Created:
    directive_id: int
    assignment_ids: dict[int, int]  # unit id → assignment id
    unit_ids: tuple[int, ...]


# ---------------------------------------------------------------------------------- conclusions

async def add_conclusion(db: AsyncSession, meeting_id: int, text: str, actor: Actor, now: datetime) -> int:
    """A conclusion of a meeting that is live (conclusions are recorded while it runs)."""
    body = clean_text(text, what="Nội dung kết luận")
    state = (await db.execute(select(Meeting.state).where(Meeting.id == meeting_id))).scalar_one_or_none()
    if state is None:
        raise NotFound("Không tìm thấy hội nghị", code="meeting_not_found")
    if state != MeetingState.LIVE.value:
        raise WrongState(f"Chỉ ghi kết luận khi hội nghị đang diễn ra (hiện: {STATE_LABEL_VI[MeetingState(state)]})",
                         state=state)
    row = Conclusion(meeting_id=meeting_id, text=body, author_id=actor.id if actor.kind == "user" else None,
                     author_name=actor.name, created_at=now)
    db.add(row)
    await db.flush()
    await audit.record(db, actor, "conclusion_recorded", f"conclusion:{row.id}", at=now, meeting=meeting_id,
                       before=None, after={"text": body})
    return row.id


async def conclusion_meeting(db: AsyncSession, conclusion_id: int) -> int:
    mid = (await db.execute(select(Conclusion.meeting_id).where(Conclusion.id == conclusion_id))).scalar_one_or_none()
    if mid is None:
        raise NotFound("Không tìm thấy kết luận", code="conclusion_not_found")
    return int(mid)


# ---------------------------------------------------------------------------------- assignees

def province_of(tree: UnitTree, unit_id: int) -> int | None:
    """The unit's province (itself if it is one), walking up the cached tree."""
    view = tree.get(unit_id)
    while view is not None:
        if view.level is Level.PROVINCE:
            return view.id
        view = tree.get(view.parent_id) if view.parent_id is not None else None
    return None


async def resolve_assignees(db: AsyncSession, spec: AssigneeSpec, reach_root: int, *,
                            strictly_below: bool = False) -> dict[int, AssigneeRole]:
    """Unit id → role for every unit the spec names; each must lie in ``reach_root``'s subtree
    (strictly below it for a breakdown). Unknown codes and units out of reach refuse the whole."""
    tree = await units.unit_tree(db)
    reach = {v.id for v in tree.subtree(reach_root)}
    if strictly_below:
        reach.discard(reach_root)
    by_code = {v.code: v.id for v in (tree.get(i) for i in reach) if v is not None}

    async def unit_id(code: str, field: str) -> int:
        uid = by_code.get(code)
        if uid is not None:
            return uid
        unit = await units.get_by_code(db, code)  # NotFound (unit_not_found) for an unknown code
        if strictly_below and unit.id == reach_root:
            raise Forbidden("Không thể giao lại nhiệm vụ cho chính đơn vị mình; chọn đơn vị cấp dưới",
                            code="breakdown_outside_subtree", field=field)
        if strictly_below:
            raise Forbidden(f"Đơn vị '{code}' không thuộc cấp dưới của đơn vị được giao nhiệm vụ",
                            code="breakdown_outside_subtree", field=field)
        raise Forbidden(f"Đơn vị '{code}' nằm ngoài phạm vi giao nhiệm vụ của bạn", code="out_of_scope", field=field)

    named = [await unit_id(c, "units") for c in spec.units]
    if spec.every_under is not None and spec.every_level is not None:
        own = tree.get(reach_root)
        # "every commune under my own unit" is a breakdown's usual shape: the root itself may be named.
        root = reach_root if own is not None and own.code == spec.every_under else await unit_id(spec.every_under,
                                                                                                  "every")
        named += [v.id for v in tree.subtree(root, spec.every_level) if v.id in reach]
    lead = await unit_id(spec.lead, "lead") if spec.lead else None
    cooperating = [await unit_id(c, "cooperating") for c in spec.cooperating]
    return assignee_roles(named, lead, cooperating)


# ---------------------------------------------------------------------------------- directives

async def _insert_directive(db: AsyncSession, *, meeting_id: int | None, conclusion_id: int | None,
                            parent: Assignment | None, assigner_unit_id: int, given: DirectiveInput,
                            roles: dict[int, AssigneeRole], actor: Actor, now: datetime) -> Created:
    text, deadline, priority = given.text, given.deadline, given.priority
    require_children_done = given.require_children_done
    tree = await units.unit_tree(db)
    lead = next((uid for uid, r in roles.items() if r is AssigneeRole.LEAD), None)
    d = Directive(meeting_id=meeting_id, conclusion_id=conclusion_id,
                  parent_assignment_id=parent.id if parent is not None else None, assigner_unit_id=assigner_unit_id,
                  text=text, deadline=deadline, priority=priority.value, lead_unit_id=lead,
                  require_children_done=require_children_done,
                  created_by_id=actor.id if actor.kind == "user" else None, created_by_name=actor.name, created_at=now)
    db.add(d)
    await db.flush()
    due = due_at(deadline)
    depth = parent.depth + 1 if parent is not None else 0
    rows = [{"directive_id": d.id, "unit_id": uid, "province_id": province_of(tree, uid), "depth": depth,
             "role": role.value, "due_at": due, "percent": 0, "completed_at": None, "outcome": None, "completed_by": "",
             "updated_at": now} for uid, role in roles.items()]
    for start in range(0, len(rows), 2000):
        await db.execute(insert(Assignment), rows[start:start + 2000])
    ids = dict((await db.execute(select(Assignment.unit_id, Assignment.id)
                                 .where(Assignment.directive_id == d.id))).all())
    await audit.record(db, actor, "directive_created", f"directive:{d.id}", at=now, before=None, after={
        "text": text, "deadline": deadline.isoformat(), "priority": priority.value, "assignees": len(roles),
        "lead_unit_id": lead, "require_children_done": require_children_done,
        "conclusion_id": conclusion_id, "parent_assignment_id": parent.id if parent is not None else None})
    return Created(d.id, ids, tuple(roles))


async def create_directive(db: AsyncSession, conclusion_id: int, given: DirectiveInput, *, actor: Actor,
                           now: datetime) -> Created:
    """A directive of a conclusion, to units within the meeting chair's unit's subtree."""
    check_deadline(given.deadline, now)
    row = (await db.execute(select(Conclusion.meeting_id, Meeting.chair_unit_id, Meeting.state)
                            .join(Meeting, Meeting.id == Conclusion.meeting_id)
                            .where(Conclusion.id == conclusion_id))).first()
    if row is None:
        raise NotFound("Không tìm thấy kết luận", code="conclusion_not_found")
    meeting_id, chair_unit_id, state = row
    if state != MeetingState.LIVE.value:  # once concluded, the record (and the minutes) are closed
        raise WrongState(f"Chỉ giao nhiệm vụ theo kết luận khi hội nghị đang diễn ra "
                         f"(hiện: {STATE_LABEL_VI[MeetingState(state)]})", state=state)
    roles = await resolve_assignees(db, given.assignees, chair_unit_id)
    return await _insert_directive(db, meeting_id=meeting_id, conclusion_id=conclusion_id, parent=None,
                                   assigner_unit_id=chair_unit_id, given=given, roles=roles, actor=actor, now=now)


async def get_assignment(db: AsyncSession, assignment_id: int, *, lock: bool = False) -> Assignment:
    stmt = select(Assignment).where(Assignment.id == assignment_id)
    if lock:
        stmt = stmt.with_for_update()
    found = (await db.execute(stmt)).scalar_one_or_none()
    if found is None:
        raise _not_found_assignment()
    return found


async def break_down(db: AsyncSession, assignment_id: int, given: DirectiveInput, *, actor: Actor,
                     now: datetime) -> Created:
    """A directive from a unit's own assignment to units strictly below that unit."""
    check_deadline(given.deadline, now)
    parent = await get_assignment(db, assignment_id, lock=True)  # serialised with marking it done
    if parent.completed_at is not None:
        raise AssignmentDone("Nhiệm vụ đã hoàn thành, không thể giao tiếp cho cấp dưới")
    meeting_id = (await db.execute(select(Directive.meeting_id)
                                   .where(Directive.id == parent.directive_id))).scalar_one()
    roles = await resolve_assignees(db, given.assignees, parent.unit_id, strictly_below=True)
    return await _insert_directive(db, meeting_id=meeting_id, conclusion_id=None, parent=parent,
                                   assigner_unit_id=parent.unit_id, given=given, roles=roles, actor=actor, now=now)


# ---------------------------------------------------------------------------------- progress

def _state(a: Assignment) -> dict[str, Any]:
    return {"percent": a.percent, "completed_at": a.completed_at.isoformat() if a.completed_at else None}


async def report_progress(db: AsyncSession, assignment_id: int, *, text: str, percent: object,
                          files: list[StoredFile], actor: Actor, now: datetime) -> int:
    """A progress report (text, percent, attachments); the assignment takes its percent."""
    body = clean_text(text, what="Nội dung báo cáo")
    value = check_percent(percent)
    a = await get_assignment(db, assignment_id, lock=True)
    if a.completed_at is not None:
        raise AssignmentDone("Nhiệm vụ đã hoàn thành; không nhận thêm báo cáo tiến độ")
    before = _state(a)
    report = ProgressReport(assignment_id=a.id, text=body, percent=value,
                            author_id=actor.id if actor.kind == "user" else None, author_name=actor.name, at=now)
    db.add(report)
    a.percent, a.updated_at = value, now
    await db.flush()
    for f in files:
        db.add(Attachment(report_id=report.id, filename=f.filename, content_type=f.content_type, size=f.size,
                          sha256=f.sha256, storage_path=f.storage_path))
    await audit.record(db, actor, "assignment_progress", f"assignment:{a.id}", at=now, before=before,
                       after={**_state(a), "report_id": report.id, "attachments": [f.filename for f in files]})
    return report.id


async def open_children(db: AsyncSession, assignment_id: int) -> int:
    stmt = (select(func.count()).select_from(Assignment).join(Directive, Directive.id == Assignment.directive_id)
            .where(Directive.parent_assignment_id == assignment_id, Assignment.completed_at.is_(None)))
    return int((await db.execute(stmt)).scalar_one())


async def complete(db: AsyncSession, assignment_id: int, *, actor: Actor, now: datetime) -> Assignment:
    """Mark done (100 %), refused while the breakdown is open if the directive requires it."""
    a = await get_assignment(db, assignment_id, lock=True)
    if a.completed_at is not None:
        raise AssignmentDone("Nhiệm vụ đã được báo hoàn thành trước đó")
    required = (await db.execute(select(Directive.require_children_done)
                                 .where(Directive.id == a.directive_id))).scalar_one()
    check_can_complete(bool(required), await open_children(db, a.id))
    before = _state(a)
    a.completed_at, a.completed_by, a.percent, a.updated_at = now, actor.name[:100], 100, now
    a.outcome = bucket(a.due_at, now, now).value
    await db.flush()
    await audit.record(db, actor, "assignment_done", f"assignment:{a.id}", at=now, before=before, after=_state(a))
    return a


async def flag_overdue(db: AsyncSession, now: datetime, *, actor: Actor) -> dict[int, int]:
    """Flag every open assignment past its deadline that is not flagged yet (the daily reminder);
    unit id → how many of its assignments were flagged now. Audited as one row per run."""
    stmt = (update(Assignment)
            .where(Assignment.outcome.is_(None), Assignment.due_at <= now, Assignment.overdue_flagged_at.is_(None))
            .values(overdue_flagged_at=now).returning(Assignment.unit_id))
    flagged: dict[int, int] = {}
    for unit_id in (await db.execute(stmt)).scalars().all():
        flagged[unit_id] = flagged.get(unit_id, 0) + 1
    if flagged:
        await audit.record(db, actor, "overdue_flagged", f"{sum(flagged.values())} nhiệm vụ", at=now,
                           units=len(flagged))
    return flagged
