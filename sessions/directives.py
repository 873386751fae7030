"""Directive rules: the four status buckets, validation, the cascade rule and the roll-up.

The buckets are those of the Government Office's follow-up regime (Decision 42/2014/QĐ-TTg as
amended by 23/2018/QĐ-TTg): done on time, done late, open within deadline, open overdue. A
deadline is a calendar date and means the *end of that day in Vietnam time*; it is stored as the
UTC instant the next Vietnamese day starts (``due_at``), so every comparison — here and in the
dashboard's SQL — is one ``<`` between UTC instants. Plain Python, no I/O; the clock is the caller's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from sessions.errors import Conflict, ValidationFailed
from sessions.timezone import VN
from sessions.units import Level
from sessions.values import reject_controls

MAX_TEXT = 4000
MAX_NAMED_UNITS = 200  # units named one by one; "every unit of level L under U" has no cap


class Bucket(StrEnum):
    OPEN_OVERDUE = "open_overdue"
    OPEN_WITHIN = "open_within"
    DONE_LATE = "done_late"
    DONE_ON_TIME = "done_on_time"


# Overdue first: the order of "my unit's directives".
BUCKET_ORDER: tuple[Bucket, ...] = (Bucket.OPEN_OVERDUE, Bucket.OPEN_WITHIN, Bucket.DONE_LATE, Bucket.DONE_ON_TIME)
BUCKET_LABEL_VI = {
    Bucket.OPEN_OVERDUE: "Quá hạn chưa hoàn thành",
    Bucket.OPEN_WITHIN: "Đang thực hiện trong hạn",
    Bucket.DONE_LATE: "Hoàn thành quá hạn",
    Bucket.DONE_ON_TIME: "Hoàn thành đúng hạn",
}


class Priority(StrEnum):
    """Urgency marks of Vietnamese official documents (Decree 30/2020/NĐ-CP)."""

    NORMAL = "normal"
    URGENT = "urgent"
    VERY_URGENT = "very_urgent"
    FLASH = "flash"


PRIORITY_LABEL_VI = {
    Priority.NORMAL: "Thường",
    Priority.URGENT: "Khẩn",
    Priority.VERY_URGENT: "Thượng khẩn",
    Priority.FLASH: "Hỏa tốc",
}


class AssigneeRole(StrEnum):
    ASSIGNEE = "assignee"  # one of many units each doing its own part
    LEAD = "lead"  # chủ trì
    COOPERATE = "cooperate"  # phối hợp


ROLE_LABEL_VI = {AssigneeRole.ASSIGNEE: "Thực hiện", AssigneeRole.LEAD: "Chủ trì", AssigneeRole.COOPERATE: "Phối hợp"}


class ChildrenOpen(Conflict):
    code = "children_open"


def today_vn(now: datetime) -> date:
    return now.astimezone(VN).date()


def due_at(deadline: date) -> datetime:
    """The instant a deadline passes: the start of the next day in Vietnam, in UTC."""
    return datetime.combine(deadline + timedelta(days=1), time(0), VN).astimezone(UTC)


def bucket(due: datetime, completed_at: datetime | None, now: datetime) -> Bucket:
    """Which of the four buckets an assignment is in at ``now``."""
    if completed_at is not None:
        return Bucket.DONE_ON_TIME if completed_at < due else Bucket.DONE_LATE
    return Bucket.OPEN_WITHIN if now < due else Bucket.OPEN_OVERDUE


def days_overdue(due: datetime, now: datetime) -> int:
    """Whole Vietnamese days past the deadline (0 while within it)."""
    if now < due:
        return 0
    return (today_vn(now) - today_vn(due - timedelta(microseconds=1))).days


# ---------------------------------------------------------------------------------- validation

def parse_deadline(raw: object) -> date:
    if isinstance(raw, date) and not isinstance(raw, datetime):
        return raw
    try:
        return date.fromisoformat(str(raw).strip())
    except ValueError:
        raise ValidationFailed("Thời hạn không hợp lệ (định dạng YYYY-MM-DD)", code="deadline_invalid",
                               field="deadline") from None


def check_deadline(deadline: date, now: datetime) -> date:
    """A new directive's deadline may be today or later (Vietnam time), never in the past."""
    if deadline < today_vn(now):
        raise ValidationFailed(f"Thời hạn {deadline:%d/%m/%Y} đã qua; chọn hôm nay hoặc một ngày sau",
                               code="deadline_past", field="deadline")
    return deadline


def check_percent(raw: object) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ValidationFailed("Tiến độ phải là số nguyên từ 0 đến 100", code="percent_invalid", field="percent")
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed("Tiến độ phải là số nguyên từ 0 đến 100", code="percent_invalid",
                               field="percent") from None
    if not 0 <= value <= 100:
        raise ValidationFailed(f"Tiến độ phải từ 0 đến 100 % (nhận {value})", code="percent_invalid",
                               field="percent")
    return value


def clean_text(raw: object, *, field: str = "text", limit: int = MAX_TEXT, what: str = "Nội dung") -> str:
    text = reject_controls(raw, field, multiline=True, label=what).strip() if isinstance(raw, str) else ""
    if not text:
        raise ValidationFailed(f"{what} không được để trống", code="text_required", field=field)
    if len(text) > limit:
        raise ValidationFailed(f"{what} dài quá {limit} ký tự", code="text_too_long", field=field)
    return text


def parse_priority(raw: object) -> Priority:
    if raw in (None, ""):
        return Priority.NORMAL
    try:
        return Priority(str(raw))
    except ValueError:
        raise ValidationFailed("Độ khẩn không hợp lệ: normal, urgent, very_urgent hoặc flash",
                               code="priority_invalid", field="priority") from None


def assignee_roles(units: Iterable[int], lead: int | None, cooperating: Iterable[int]) -> dict[int, AssigneeRole]:
    """Each named unit once: the lead unit leads, cooperating units cooperate, the rest are assignees."""
    roles = dict.fromkeys(units, AssigneeRole.ASSIGNEE)
    for uid in cooperating:
        roles[uid] = AssigneeRole.COOPERATE
    if lead is not None:
        roles[lead] = AssigneeRole.LEAD
    if not roles:
        raise ValidationFailed("Cần ít nhất một đơn vị được giao", code="assignees_required", field="assignees")
    return roles


@dataclass(frozen=True, slots=True)
class AssigneeSpec:
    """Who a directive goes to: units by code, and/or every unit of one level under a unit;
    optionally the lead unit and cooperating units (added as assignees if not named already)."""

    units: tuple[str, ...] = ()
    every_under: str | None = None
    every_level: Level | None = None
    lead: str | None = None
    cooperating: tuple[str, ...] = ()


def _codes(raw: object, field: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(c, str) and c.strip() for c in raw):
        raise ValidationFailed(f"'{field}' phải là danh sách mã đơn vị", code="assignees_invalid", field=field)
    if len(raw) > MAX_NAMED_UNITS:
        raise ValidationFailed(f"Tối đa {MAX_NAMED_UNITS} đơn vị kể tên; dùng 'every' để giao cho cả một cấp",
                               code="assignees_invalid", field=field)
    return tuple(dict.fromkeys(c.strip() for c in raw))


def parse_assignees(body: dict[str, object]) -> AssigneeSpec:
    """``units`` (codes), ``every`` ({"unit": code, "level": level}), ``lead`` and ``cooperating``."""
    every = body.get("every")
    under, level = None, None
    if every is not None:
        if not isinstance(every, dict) or not isinstance(every.get("unit"), str):
            raise ValidationFailed("'every' phải có dạng {\"unit\": mã đơn vị, \"level\": cấp}",
                                   code="assignees_invalid", field="every")
        try:
            level = Level(str(every.get("level")))
        except ValueError:
            raise ValidationFailed("Cấp không hợp lệ: province, district hoặc commune", code="assignees_invalid",
                                   field="every") from None
        if level is Level.CENTRAL:
            raise ValidationFailed("Chọn cấp tỉnh, huyện hoặc xã", code="assignees_invalid", field="every")
        under = str(every["unit"]).strip()
    lead = body.get("lead")
    if lead is not None and (not isinstance(lead, str) or not lead.strip()):
        raise ValidationFailed("'lead' phải là mã một đơn vị", code="assignees_invalid", field="lead")
    spec = AssigneeSpec(_codes(body.get("units"), "units"), under, level, lead.strip() if lead else None,
                        _codes(body.get("cooperating"), "cooperating"))
    if not (spec.units or spec.every_under or spec.lead or spec.cooperating):
        raise ValidationFailed("Cần ít nhất một đơn vị được giao", code="assignees_required", field="units")
    return spec


# ---------------------------------------------------------------------------------- cascade

def check_can_complete(require_children_done: bool, open_children: int) -> None:
    """The cascade rule: with the directive's flag set, a broken-down assignment is done only
    once every assignment of its breakdown is done."""
    if require_children_done and open_children:
        raise ChildrenOpen(f"Còn {open_children} nhiệm vụ cấp dưới chưa hoàn thành; không thể báo hoàn thành",
                           open=open_children)


@dataclass
class Rollup:
    """The children of a broken-down assignment at a glance: counts per bucket, mean progress."""

    total: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {b.value: 0 for b in BUCKET_ORDER})
    percent: int = 0

    @property
    def open(self) -> int:
        return self.counts[Bucket.OPEN_WITHIN] + self.counts[Bucket.OPEN_OVERDUE]

    def as_dict(self) -> dict[str, object]:
        return {"total": self.total, "open": self.open, "counts": dict(self.counts), "percent": self.percent}


def rollup(children: Iterable[tuple[Bucket, int]]) -> Rollup:
    """Roll (bucket, percent) pairs up; a done child counts 100 % whatever it last reported."""
    out = Rollup()
    total_percent = 0
    for b, percent in children:
        out.total += 1
        out.counts[b.value] += 1
        total_percent += 100 if b in (Bucket.DONE_LATE, Bucket.DONE_ON_TIME) else percent
    out.percent = round(total_percent / out.total) if out.total else 0
    return out


# ---------------------------------------------------------------------------------- input

@dataclass(frozen=True, slots=True)
class DirectiveInput:
    text: str
    deadline: date
    priority: Priority
    assignees: AssigneeSpec
    require_children_done: bool


def parse_directive(body: object) -> DirectiveInput:
    """A directive as the API receives it: text, deadline (YYYY-MM-DD), priority, assignees
    (see ``parse_assignees``), require_children_done (default true). The deadline's place in
    time is checked by the store, against the clock."""
    if not isinstance(body, dict):
        raise ValidationFailed("Chỉ đạo phải là một đối tượng JSON", code="directive_invalid")
    flag = body.get("require_children_done", True)
    if not isinstance(flag, bool):
        raise ValidationFailed("'require_children_done' phải là true hoặc false", code="directive_invalid",
                               field="require_children_done")
    return DirectiveInput(clean_text(body.get("text"), what="Nội dung chỉ đạo"), parse_deadline(body.get("deadline")),
                          parse_priority(body.get("priority")), parse_assignees(body), flag)
