"""Following directives up (read side): what a unit gave and follows ("Theo dõi"), the on-time
rate month by month, the overdue list with days late (the follow-up export), the directive
trees that reach one province, and where a directive came from (its meeting and minutes).

Like ``directive_views``, everything is bounded by a subtree the caller has already checked the
reader may reach; an invisible thing answers as a missing one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from sessions.directives import ROLE_LABEL_VI, AssigneeRole, Bucket, days_overdue, rollup
from sessions.errors import NotFound, ValidationFailed
from sessions.models import Assignment, Directive, Meeting, MeetingMinutes, UnitClosure
from sessions.store import units
from sessions.store.directive_views import _unit, directive_tree
from sessions.store.meetings import visible_to
from sessions.timezone import VN

S = TypeVar("S", bound=Select[*tuple[Any, ...]])
TREE_ASSIGNMENTS_CAP = 20_000  # a province's trees fit; the whole nation's (100,000 and more) do not
TREE_ROOTS_CAP = 100  # directive trees on one province page; the page says when there are more
OVERDUE_CAP = 50_000  # rows of the overdue sheet; the sheet says when there are more
TREND_MONTHS = 12


def _in_subtree(root_unit_id: int) -> ColumnElement[bool]:
    return Assignment.unit_id.in_(select(UnitClosure.descendant_id).where(UnitClosure.ancestor_id == root_unit_id))


def _scoped(stmt: S, root_unit_id: int, is_top: bool) -> S:
    return stmt if is_top else stmt.where(_in_subtree(root_unit_id))


# ---------------------------------------------------------------------------------- "Theo dõi"

async def followed(db: AsyncSession, unit_id: int, now: datetime, limit: int = 200) -> list[dict[str, Any]]:
    """The directives the unit gave (from a meeting it chaired, or a breakdown of its own
    assignment), newest first, each with its assignees' counts per bucket and mean progress."""
    tree = await units.unit_tree(db)
    rows = (await db.execute(select(Directive, Meeting.title).outerjoin(Meeting, Meeting.id == Directive.meeting_id)
                             .where(Directive.assigner_unit_id == unit_id)
                             .order_by(Directive.created_at.desc(), Directive.id.desc()).limit(limit))).all()
    ids = [d.id for d, _ in rows]
    pairs: dict[int, list[tuple[Bucket, int]]] = defaultdict(list)
    if ids:
        within = func.sum(case((Assignment.due_at > now, 1), else_=0))
        stmt = (select(Assignment.directive_id, Assignment.outcome, within, func.count(), func.sum(Assignment.percent))
                .where(Assignment.directive_id.in_(ids)).group_by(Assignment.directive_id, Assignment.outcome))
        for did, outcome, n_within, n, percent_sum in (await db.execute(stmt)).all():
            n, n_within, percent_sum = int(n), int(n_within or 0), int(percent_sum or 0)
            if outcome is None:  # open: split by the clock; mean progress spread evenly (it only feeds the mean)
                mean = percent_sum // n if n else 0
                pairs[did] += [(Bucket.OPEN_WITHIN, mean)] * n_within + [(Bucket.OPEN_OVERDUE, mean)] * (n - n_within)
            else:
                pairs[did] += [(Bucket(outcome), 100)] * n
    out = []
    for d, title in rows:
        r = rollup(pairs.get(d.id, []))
        out.append({"id": d.id, "text": d.text, "deadline": d.deadline.isoformat(), "priority": d.priority,
                    "meeting": {"id": d.meeting_id, "title": title} if d.meeting_id is not None else None,
                    "breakdown": d.parent_assignment_id is not None, "lead_unit": _unit(tree, d.lead_unit_id),
                    "rollup": r.as_dict()})
    return out


# ---------------------------------------------------------------------------------- on time, by month

def _month_starts(first: datetime, now: datetime, months: int) -> list[datetime]:
    """Local (Vietnam) month starts from ``first``'s month to ``now``'s, the last ``months`` of them,
    plus the start of the month after ``now`` (the last bound)."""
    def start(dt: datetime) -> datetime:
        return dt.astimezone(VN).replace(day=1, hour=0, minute=0, second=0, microsecond=0)

    def nxt(dt: datetime) -> datetime:
        return (dt.replace(tzinfo=None) + timedelta(days=32)).replace(day=1).replace(tzinfo=VN)

    bounds = [start(first)]
    end = nxt(start(now))
    while bounds[-1] < end:
        bounds.append(nxt(bounds[-1]))
    return bounds[-(months + 1):]


async def on_time_trend(db: AsyncSession, root_unit_id: int, now: datetime,
                        months: int = TREND_MONTHS) -> list[dict[str, Any]]:
    """Per local month (oldest first, at most ``months``, from the first completion): the
    assignments of the subtree marked done in it, how many of them on time, and the rate in %
    (None for a month with none done). One query for the range, one for the counts."""
    tree = await units.unit_tree(db)
    root = tree.get(root_unit_id)
    if root is None:
        raise NotFound("Không tìm thấy đơn vị", code="unit_not_found")
    is_top = root.parent_id is None
    first = (await db.execute(_scoped(select(func.min(Assignment.completed_at)), root_unit_id, is_top))).scalar()
    if first is None:
        return []
    if first.tzinfo is None:  # SQLite hands back naive UTC from an aggregate
        first = first.replace(tzinfo=UTC)
    bounds = _month_starts(first, now, months)
    cols = []
    on_time = Assignment.outcome == Bucket.DONE_ON_TIME.value
    for lo, hi in pairwise(bounds):
        inside = (Assignment.completed_at >= lo) & (Assignment.completed_at < hi)
        cols += [func.sum(case((inside, 1), else_=0)), func.sum(case((inside & on_time, 1), else_=0))]
    row = (await db.execute(_scoped(select(*cols).where(Assignment.completed_at.is_not(None)),
                                    root_unit_id, is_top))).one()
    out = []
    for i, lo in enumerate(bounds[:-1]):
        done, good = int(row[2 * i] or 0), int(row[2 * i + 1] or 0)
        out.append({"month": lo.strftime("%Y-%m"), "label": lo.strftime("%m/%Y"), "done": done, "on_time": good,
                    "rate": round(100 * good / done, 2) if done else None})
    return out


# ---------------------------------------------------------------------------------- overdue list

@dataclass(frozen=True, slots=True)
class OverdueRow:
    province: str
    unit_code: str
    unit: str
    role: str
    text: str
    assigner: str
    deadline: str  # dd/mm/yyyy
    days_late: int
    percent: int
    directive_id: int
    assignment_id: int


async def overdue(db: AsyncSession, root_unit_id: int, now: datetime,
                  limit: int = OVERDUE_CAP) -> tuple[list[OverdueRow], int]:
    """Open assignments past their deadline in the root's subtree, the longest late first, and
    how many there are in all (the list stops at ``limit``)."""
    tree = await units.unit_tree(db)
    root = tree.get(root_unit_id)
    if root is None:
        raise NotFound("Không tìm thấy đơn vị", code="unit_not_found")
    is_top = root.parent_id is None
    late = (Assignment.outcome.is_(None), Assignment.due_at <= now)
    total = int((await db.execute(_scoped(select(func.count()).select_from(Assignment).where(*late),
                                          root_unit_id, is_top))).scalar_one())
    a, d = Assignment, Directive
    stmt = _scoped(select(a.id, a.unit_id, a.province_id, a.role, a.due_at, a.percent, d.id, d.text, d.assigner_unit_id,
                          d.deadline).join(d, d.id == a.directive_id).where(*late), root_unit_id, is_top)
    stmt = stmt.order_by(a.due_at, a.province_id, a.unit_id, a.id).limit(limit)
    out = []
    names: dict[int | None, str] = {}

    def name(uid: int | None) -> str:
        if uid not in names:
            v = tree.get(uid) if uid is not None else None
            names[uid] = v.name if v is not None else ""
        return names[uid]

    for aid, uid, pid, role, due, percent, did, text, assigner, deadline in (await db.execute(stmt)).all():
        unit = tree.get(uid)
        out.append(OverdueRow(province=name(pid), unit_code=unit.code if unit else "", unit=name(uid),
                              role=ROLE_LABEL_VI[AssigneeRole(role)], text=text, assigner=name(assigner),
                              deadline=deadline.strftime("%d/%m/%Y"), days_late=days_overdue(due, now),
                              percent=percent, directive_id=did, assignment_id=aid))
    return out, total


# ---------------------------------------------------------------------------------- one province's trees

async def trees_within(db: AsyncSession, reader_unit_id: int, within_unit_id: int, now: datetime,
                       limit: int = TREE_ROOTS_CAP) -> tuple[list[dict[str, Any]], int]:
    """Every directive cascade that reaches ``within_unit_id``'s subtree, cut to that subtree:
    its roots are the directives with an assignment there that came from outside it (or from a
    conclusion); breakdowns inside it hang under them. ``within`` lies in the reader's subtree
    (checked by the caller). Returns the trees (oldest first, at most ``limit``) and how many."""
    inside = select(UnitClosure.descendant_id).where(UnitClosure.ancestor_id == within_unit_id)
    size = int((await db.execute(select(func.count()).select_from(Assignment)
                                 .where(Assignment.unit_id.in_(inside)))).scalar_one())
    if size > TREE_ASSIGNMENTS_CAP:
        def vi(n: int) -> str:
            return f"{n:,}".replace(",", ".")

        raise ValidationFailed(f"Đơn vị có {vi(size)} nhiệm vụ, quá nhiều để hiện trên một trang (tối đa "
                               f"{vi(TREE_ASSIGNMENTS_CAP)}): chọn một tỉnh trên bảng theo dõi, hoặc tải bảng tổng hợp "
                               f"(XLSX)", code="tree_too_large", field="unit")
    roots = (select(Directive.id).where(
        Directive.id.in_(select(Assignment.directive_id).where(Assignment.unit_id.in_(inside))),
        or_(Directive.parent_assignment_id.is_(None), Directive.assigner_unit_id.not_in(inside))))
    ids = list((await db.execute(roots.order_by(Directive.id))).scalars().all())
    trees = [await directive_tree(db, did, reader_unit_id, now, within=within_unit_id) for did in ids[:limit]]
    return trees, len(ids)


# ---------------------------------------------------------------------------------- where it came from

async def origin(db: AsyncSession, meeting_id: int | None, reader_unit_id: int) -> dict[str, Any] | None:
    """The meeting a directive's cascade started from, if the reader may see it, and whether its
    minutes are published (the meeting concluded)."""
    if meeting_id is None or not await visible_to(db, meeting_id, reader_unit_id):
        return None
    m = (await db.execute(select(Meeting.id, Meeting.title, Meeting.scheduled_start)
                          .where(Meeting.id == meeting_id))).one()
    minutes = (await db.execute(select(func.max(MeetingMinutes.version))
                                .where(MeetingMinutes.meeting_id == meeting_id))).scalar()
    return {"id": m.id, "title": m.title, "start": m.scheduled_start.isoformat(), "minutes_version": minutes}
