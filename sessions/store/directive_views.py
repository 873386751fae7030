"""Reading directives: my unit's assignments by bucket (overdue first), the chair's dashboard
(counts per bucket per province, one grouped query with the bucket computed in SQL), a directive
with its cascade tree, an assignment with its reports, attachments and history.

Everything is filtered to the reader's subtree: a reader sees an assignment iff its unit lies in
the reader's subtree, and a directive iff it gave it (its unit is the assigner or above) or one
of its assignments is visible. Invisible things answer exactly as missing ones (404).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from sessions.directive_history import Audited, Given
from sessions.directive_history import events as history_events
from sessions.directives import (
    BUCKET_LABEL_VI,
    BUCKET_ORDER,
    PRIORITY_LABEL_VI,
    ROLE_LABEL_VI,
    AssigneeRole,
    Bucket,
    Priority,
    bucket,
    days_overdue,
    rollup,
)
from sessions.errors import NotFound
from sessions.models import (
    Assignment,
    Attachment,
    AuditEntry,
    Conclusion,
    Directive,
    Meeting,
    ProgressReport,
    UnitClosure,
)
from sessions.store import units
from sessions.unit_tree import UnitTree
from sessions.units import Level


def directive_not_found() -> NotFound:
    return NotFound("Không tìm thấy chỉ đạo", code="directive_not_found")


def bucket_sql(now: datetime) -> ColumnElement[str]:
    """``sessions.directives.bucket`` as a SQL expression: a done assignment's bucket was fixed
    when it was marked done (``outcome``); an open one is within until ``due_at``."""
    a = Assignment
    return case(
        (a.outcome.is_not(None), a.outcome),
        (a.due_at > now, Bucket.OPEN_WITHIN.value),
        else_=Bucket.OPEN_OVERDUE.value,
    )


def _unit(tree: UnitTree, uid: int | None) -> dict[str, Any] | None:
    v = tree.get(uid) if uid is not None else None
    return {"id": v.id, "code": v.code, "name": v.name, "level": v.level.value} if v is not None else None


def assignment_dict(a: Assignment, tree: UnitTree, now: datetime) -> dict[str, Any]:
    b = bucket(a.due_at, a.completed_at, now)
    return {"id": a.id, "directive_id": a.directive_id, "unit": _unit(tree, a.unit_id), "depth": a.depth,
            "role": a.role, "role_label": ROLE_LABEL_VI[AssigneeRole(a.role)], "percent": a.percent,
            "due_at": a.due_at.isoformat(), "completed_at": a.completed_at.isoformat() if a.completed_at else None,
            "completed_by": a.completed_by, "bucket": b.value, "bucket_label": BUCKET_LABEL_VI[b],
            "days_overdue": days_overdue(a.due_at, a.completed_at or now),
            "overdue_flagged_at": a.overdue_flagged_at.isoformat() if a.overdue_flagged_at else None}


def directive_dict(d: Directive, tree: UnitTree, reach: set[int] | None = None) -> dict[str, Any]:
    """``reach`` given: the account that gave the directive is named only to readers who reach
    the giving unit (below it, the unit is what matters, not the person)."""
    shown = reach is None or d.assigner_unit_id in reach
    return {"id": d.id, "meeting_id": d.meeting_id, "conclusion_id": d.conclusion_id,
            "parent_assignment_id": d.parent_assignment_id, "assigner_unit": _unit(tree, d.assigner_unit_id),
            "text": d.text, "deadline": d.deadline.isoformat(), "priority": d.priority,
            "priority_label": PRIORITY_LABEL_VI[Priority(d.priority)], "lead_unit": _unit(tree, d.lead_unit_id),
            "require_children_done": d.require_children_done, "created_by": d.created_by_name if shown else "",
            "created_at": d.created_at.isoformat()}


async def _reach(db: AsyncSession, unit_id: int) -> tuple[UnitTree, set[int]]:
    tree = await units.unit_tree(db)
    return tree, {v.id for v in tree.subtree(unit_id)}


# ---------------------------------------------------------------------------------- my unit

async def list_for_unit(db: AsyncSession, unit_id: int, now: datetime, limit: int = 500) -> list[dict[str, Any]]:
    """The unit's own assignments, overdue first, then open within deadline, done late, done on
    time; within a bucket the nearest deadline first."""
    b = bucket_sql(now)
    rank = case(*((b == bk.value, i) for i, bk in enumerate(BUCKET_ORDER)), else_=len(BUCKET_ORDER))
    stmt = (select(Assignment, Directive).join(Directive, Directive.id == Assignment.directive_id)
            .where(Assignment.unit_id == unit_id).order_by(rank, Assignment.due_at, Assignment.id).limit(limit))
    tree = await units.unit_tree(db)
    reach = {v.id for v in tree.subtree(unit_id)}
    out = []
    for a, d in (await db.execute(stmt)).all():
        out.append({**assignment_dict(a, tree, now), "directive": directive_dict(d, tree, reach)})
    return out


# ---------------------------------------------------------------------------------- dashboard

async def dashboard(db: AsyncSession, root_unit_id: int, now: datetime, *, meeting_id: int | None = None,
                    depth: int | None = None) -> dict[str, Any]:
    """Counts per bucket per province of every assignment in the root's subtree: one grouped scan."""
    tree = await units.unit_tree(db)
    root = tree.get(root_unit_id)
    if root is None:
        raise NotFound("Không tìm thấy đơn vị", code="unit_not_found")
    # Grouped by (province, outcome) in the dashboard index's order; open rows split by the clock.
    within = func.sum(case((Assignment.due_at > now, 1), else_=0))
    stmt = (select(Assignment.province_id, Assignment.outcome, within, func.count())
            .group_by(Assignment.province_id, Assignment.outcome))
    if root.parent_id is not None:  # the whole tree needs no filter
        stmt = stmt.where(Assignment.unit_id.in_(
            select(UnitClosure.descendant_id).where(UnitClosure.ancestor_id == root_unit_id)))
    if meeting_id is not None:
        stmt = stmt.where(Assignment.directive_id.in_(select(Directive.id).where(Directive.meeting_id == meeting_id)))
    if depth is not None:
        stmt = stmt.where(Assignment.depth == depth)
    counts: dict[int | None, dict[str, int]] = defaultdict(lambda: {bk.value: 0 for bk in BUCKET_ORDER})
    for pid, outcome, n_within, n in (await db.execute(stmt)).all():
        if outcome is None:
            counts[pid][Bucket.OPEN_WITHIN] += int(n_within or 0)
            counts[pid][Bucket.OPEN_OVERDUE] += int(n) - int(n_within or 0)
        else:
            counts[pid][outcome] += int(n)
    if root.level.rank >= Level.PROVINCE.rank:
        # Below the ministry there is one row: the reader's own unit, whatever province it is in.
        merged = {bk.value: sum(c[bk.value] for c in counts.values()) for bk in BUCKET_ORDER}
        rows = [(root.id, merged)]
    else:
        rows = [(v.id, counts.pop(v.id) if v.id in counts else {bk.value: 0 for bk in BUCKET_ORDER})
                for v in tree.subtree(root_unit_id, Level.PROVINCE)]
        if counts:  # units of the root's subtree outside any province (e.g. the ministry's departments)
            rest = {bk.value: sum(c[bk.value] for c in counts.values()) for bk in BUCKET_ORDER}
            rows.insert(0, (root.id, rest))
    totals = {bk.value: sum(c[bk.value] for _, c in rows) for bk in BUCKET_ORDER}
    return {
        "unit": _unit(tree, root.id), "at": now.isoformat(), "buckets": [
            {"code": bk.value, "label": BUCKET_LABEL_VI[bk]} for bk in BUCKET_ORDER],
        "rows": [{"unit": _unit(tree, uid), "counts": c, "total": sum(c.values())} for uid, c in rows],
        "totals": totals, "total": sum(totals.values()),
    }


# ---------------------------------------------------------------------------------- one directive

def _below(unit_id: int) -> ColumnElement[bool]:
    return Assignment.unit_id.in_(select(UnitClosure.descendant_id).where(UnitClosure.ancestor_id == unit_id))


async def _visible_directive(db: AsyncSession, directive_id: int, reach: set[int], reach_root: int) -> Directive:
    """``reach``: the ids of ``reach_root``'s subtree (the same thing, for the SQL side)."""
    d = await db.get(Directive, directive_id)
    if d is None:
        raise directive_not_found()
    if d.assigner_unit_id in reach:
        return d
    seen = (await db.execute(select(Assignment.id).where(Assignment.directive_id == d.id, _below(reach_root))
                             .limit(1))).first()
    if seen is None:
        raise directive_not_found()
    return d


async def directive_tree(db: AsyncSession, directive_id: int, reader_unit_id: int, now: datetime, *,
                         within: int | None = None) -> dict[str, Any]:
    """The directive, its assignments the reader may see, and under each assignment the
    directives it was broken down into (recursively), with each broken-down assignment's roll-up.
    ``within`` (a unit of the reader's subtree, checked by the caller): only that subtree's part."""
    tree, reader_reach = await _reach(db, reader_unit_id)
    root = reader_unit_id if within is None else within
    reach = reader_reach if within is None else {v.id for v in tree.subtree(within)} & reader_reach
    top = await _visible_directive(db, directive_id, reach, root)
    root_view = tree.get(root)
    scoped = root_view is not None and root_view.parent_id is not None  # the whole tree needs no filter
    directives: dict[int, Directive] = {top.id: top}
    by_directive: dict[int, list[Assignment]] = defaultdict(list)
    children_of: dict[int, list[int]] = defaultdict(list)  # assignment id → directive ids
    frontier = [top.id]
    while frontier:  # one level of the cascade per round: two queries
        stmt = select(Assignment).where(Assignment.directive_id.in_(frontier)).order_by(Assignment.id)
        if scoped:  # a nationwide directive has 10,000 assignments: read only the part shown
            stmt = stmt.where(_below(root))
        rows = (await db.execute(stmt)).scalars().all()
        visible = [a for a in rows if a.unit_id in reach]
        for a in visible:
            by_directive[a.directive_id].append(a)
        if not visible:
            break
        kids = (await db.execute(select(Directive).where(Directive.parent_assignment_id.in_([a.id for a in visible]))
                                 .order_by(Directive.id))).scalars().all()
        for d in kids:
            directives[d.id] = d
            assert d.parent_assignment_id is not None
            children_of[d.parent_assignment_id].append(d.id)
        frontier = [d.id for d in kids]

    def node(did: int) -> dict[str, Any]:
        out = directive_dict(directives[did], tree, reader_reach)
        items = []
        for a in by_directive.get(did, []):
            item = assignment_dict(a, tree, now)
            kids = [node(k) for k in children_of.get(a.id, [])]
            item["breakdown"] = kids
            item["rollup"] = rollup((Bucket(c["bucket"]), c["percent"]) for k in kids
                                    for c in k["assignments"]).as_dict()
            items.append(item)
        out["assignments"] = items
        out["rollup"] = rollup((Bucket(i["bucket"]), i["percent"]) for i in items).as_dict()
        return out

    return node(top.id)


# ---------------------------------------------------------------------------------- one assignment

async def assignment_detail(db: AsyncSession, assignment_id: int, reader_unit_id: int,
                            now: datetime) -> dict[str, Any]:
    tree, reach = await _reach(db, reader_unit_id)
    a = await db.get(Assignment, assignment_id)
    if a is None or a.unit_id not in reach:
        raise NotFound("Không tìm thấy nhiệm vụ", code="assignment_not_found")
    d = await db.get(Directive, a.directive_id)
    assert d is not None
    reports = (await db.execute(select(ProgressReport).where(ProgressReport.assignment_id == a.id)
                                .order_by(ProgressReport.id))).scalars().all()
    files: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if reports:
        for f in (await db.execute(select(Attachment).where(Attachment.report_id.in_([r.id for r in reports]))
                                   .order_by(Attachment.id))).scalars().all():
            files[f.report_id].append({"id": f.id, "filename": f.filename, "content_type": f.content_type,
                                       "size": f.size, "sha256": f.sha256})
    history = (await db.execute(select(AuditEntry).where(AuditEntry.target == f"assignment:{a.id}")
                                .order_by(AuditEntry.id))).scalars().all()
    kids = (await db.execute(select(Assignment).join(Directive, Directive.id == Assignment.directive_id)
                             .where(Directive.parent_assignment_id == a.id))).scalars().all()
    below = (await db.execute(select(Directive).where(Directive.parent_assignment_id == a.id)
                              .order_by(Directive.id))).scalars().all()
    per_directive = Counter(k.directive_id for k in kids)

    def given(x: Directive) -> Given:
        v = tree.get(x.assigner_unit_id)
        return Given(at=x.created_at, who=x.created_by_name if x.assigner_unit_id in reach else "",
                     unit=v.name if v else "", deadline=x.deadline, units=per_directive.get(x.id, 0), directive_id=x.id)

    unit = tree.get(a.unit_id)
    story = history_events(
        assignee=unit.name if unit else "", role=a.role, due_at=a.due_at, given=given(d),
        audited=[Audited(h.at, h.actor_name, h.action, h.detail.get("before"), h.detail.get("after")) for h in history],
        breakdowns=[given(x) for x in below], flagged_at=a.overdue_flagged_at)
    return {
        **assignment_dict(a, tree, now), "directive": directive_dict(d, tree, reach),
        "reports": [{"id": r.id, "text": r.text, "percent": r.percent, "author": r.author_name,
                     "at": r.at.isoformat(), "attachments": files.get(r.id, [])} for r in reports],
        "history": [{"at": h.at.isoformat(), "who": h.actor_name, "action": h.action,
                     "before": h.detail.get("before"), "after": h.detail.get("after")} for h in history],
        "events": story,
        "rollup": rollup((bucket(k.due_at, k.completed_at, now), k.percent) for k in kids).as_dict(),
    }


async def attachment_for(db: AsyncSession, attachment_id: int, reader_unit_id: int) -> Attachment:
    row = (await db.execute(select(Attachment, Assignment.unit_id)
                            .join(ProgressReport, ProgressReport.id == Attachment.report_id)
                            .join(Assignment, Assignment.id == ProgressReport.assignment_id)
                            .where(Attachment.id == attachment_id))).first()
    if row is None or not await units.is_within(db, reader_unit_id, row[1]):
        raise NotFound("Không tìm thấy tệp đính kèm", code="attachment_not_found")
    return row[0]


# ---------------------------------------------------------------------------------- a meeting's

async def conclusions_of(db: AsyncSession, meeting_id: int, reader_unit_id: int, now: datetime) -> list[dict[str, Any]]:
    """The meeting's conclusions, each with its directives; directives the reader cannot see are
    left out, and of the ones it sees only the assignments within its subtree."""
    tree, reach = await _reach(db, reader_unit_id)
    concl = (await db.execute(select(Conclusion).where(Conclusion.meeting_id == meeting_id)
                              .order_by(Conclusion.id))).scalars().all()
    chair_unit = (await db.execute(select(Meeting.chair_unit_id).where(Meeting.id == meeting_id))).scalar_one_or_none()
    ds = (await db.execute(select(Directive).where(Directive.conclusion_id.in_([c.id for c in concl]))
                           .order_by(Directive.id))).scalars().all() if concl else []
    rows = (await db.execute(select(Assignment).where(Assignment.directive_id.in_([d.id for d in ds]))
                             .order_by(Assignment.id))).scalars().all() if ds else []
    by_directive: dict[int, list[Assignment]] = defaultdict(list)
    for a in rows:
        if a.unit_id in reach:
            by_directive[a.directive_id].append(a)
    out = []
    for c in concl:
        items = []
        for d in ds:
            if d.conclusion_id != c.id or not (d.assigner_unit_id in reach or by_directive.get(d.id)):
                continue
            items.append({**directive_dict(d, tree, reach),
                          "assignments": [assignment_dict(a, tree, now) for a in by_directive.get(d.id, [])]})
        author = c.author_name if chair_unit in reach else ""  # the person is named only to the chair's side
        out.append({"id": c.id, "text": c.text, "author": author, "created_at": c.created_at.isoformat(),
                    "directives": items})
    return out

