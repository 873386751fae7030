"""Minutes of a concluded meeting: a frozen, versioned document. Plain Python, no storage.

When a meeting concludes, its record (roll call, floor history, KPI snapshot, conclusions and
directives) is frozen into a :class:`Minutes` value and kept as one canonical JSON blob
(:func:`to_json`). Published minutes never change: :func:`correct` returns a new version that
names its reason and the content hash of the version it supersedes, and leaves the old one as
it was. Every constructor path validates, so an invalid document cannot exist.

Times are aware datetimes, serialised in UTC; dates (deadlines) are calendar dates in
Asia/Ho_Chi_Minh.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from sessions import values

# The one table of urgency codes and labels is the directives'; re-exported here for the exports.
from sessions.directives import PRIORITY_LABEL_VI as PRIORITY_LABEL_VI
from sessions.directives import Priority as Priority
from sessions.errors import ValidationFailed
from sessions.meetings import Attendance
from sessions.minutes_attendance import LevelSummary as LevelSummary
from sessions.minutes_attendance import attendance_by_level as attendance_by_level
from sessions.minutes_attendance import total_attendance as total_attendance
from sessions.minutes_rules import check_minutes
from sessions.presiding import MAX_PRESIDING as MAX_PRESIDING
from sessions.presiding import Chair as Chair
from sessions.presiding import Presiding as Presiding
from sessions.presiding import Signer as Signer
from sessions.presiding import presiding_of as presiding_of
from sessions.timezone import VN
from sessions.units import Level

SCHEMA = 2  # 2: directive priorities are the directives' own codes (sessions.directives.Priority)
MAX_NAME = 300
# Schema 1 stored priorities shifted by one code (urgent → "high", very urgent and flash →
# "urgent"); read back as the lowest code each stood for.
_SCHEMA1_PRIORITY = {"high": Priority.URGENT.value, "urgent": Priority.VERY_URGENT.value}


class KpiPhase(StrEnum):
    LIVE = "live"  # snapshot taken when the meeting went live
    CONCLUDED = "concluded"  # snapshot taken at the conclusion


KPI_PHASE_LABEL_VI = {KpiPhase.LIVE: "Khi khai mạc", KpiPhase.CONCLUDED: "Khi kết luận"}


@dataclass(frozen=True, slots=True)
class SiteAttendance:
    """One site's final roll-call row. ``parent`` names the unit it belongs to (its province)."""

    unit_code: str
    unit_name: str
    level: Level
    status: Attendance
    reason: str = ""
    parent: str = ""


@dataclass(frozen=True, slots=True)
class FloorTurn:
    speaker: str
    unit_name: str
    started_at: datetime
    ended_at: datetime

    @property
    def duration(self) -> timedelta:
        return self.ended_at - self.started_at


@dataclass(frozen=True, slots=True)
class KpiRow:
    """One frozen KPI figure. Counts carry ``num`` only (``den`` None); ratios are num ÷ den."""

    code: str
    name: str
    unit: str  # đơn vị tính: "hồ sơ", "%", "dịch vụ"
    num: int
    den: int | None
    phase: KpiPhase
    scope: str = ""  # whose figure: "Toàn quốc", a province's name

    @property
    def value(self) -> float | None:
        if self.den is None:
            return float(self.num)
        return self.num / self.den if self.den else None


@dataclass(frozen=True, slots=True)
class DirectiveEntry:
    """A directive as the minutes record it: assignee unit names, the lead among them, a deadline.
    ``assignee_group`` names the assignees when they were chosen by a rule ("Công an các xã thuộc
    tỉnh Vĩnh Phúc"): the notice then prints the group and lists the units in an appendix."""

    text: str
    assignees: tuple[str, ...]
    deadline: date
    lead: str = ""
    cooperating: tuple[str, ...] = ()
    priority: Priority = Priority.NORMAL
    assignee_group: str = ""
    directive_id: int | None = None


@dataclass(frozen=True, slots=True)
class Conclusion:
    text: str
    directives: tuple[DirectiveEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class Minutes:
    """The minutes document. ``agency`` is the issuing agency (sentence case, e.g. "Bộ Công an");
    ``symbol`` the notice symbol ("TB-BCA"); ``number`` is blank until the document is numbered."""

    title: str
    started_at: datetime
    ended_at: datetime
    chair: Chair
    agency: str
    symbol: str
    number: str = ""
    superior_agency: str = ""
    place: str = "Hà Nội"
    venue: str = "trực tuyến"
    attendance: tuple[SiteAttendance, ...] = ()
    floor: tuple[FloorTurn, ...] = ()
    kpis: tuple[KpiRow, ...] = ()
    conclusions: tuple[Conclusion, ...] = ()
    recipients: tuple[str, ...] = ()
    signer: Signer | None = None
    meeting_id: int | None = None
    version: int = 1
    correction_reason: str = ""
    published_at: datetime | None = None
    supersedes: str = ""  # content hash of the version this one corrects

    def __post_init__(self) -> None:
        check_minutes(self)

    @property
    def issued_on(self) -> date:
        """The document's date: its publication (else the meeting's end) in Asia/Ho_Chi_Minh."""
        return (self.published_at or self.ended_at).astimezone(VN).date()

    @property
    def directives(self) -> tuple[DirectiveEntry, ...]:
        return tuple(d for c in self.conclusions for d in c.directives)


# Fields a correction may change; the rest are the version's own bookkeeping.
BOOKKEEPING = frozenset({"version", "correction_reason", "published_at", "supersedes", "meeting_id"})
CORRECTABLE = frozenset(f.name for f in fields(Minutes)) - BOOKKEEPING


# ---------------------------------------------------------------------------------------------
# Building from plain inputs (also the JSON path)


def build_minutes(**data: Any) -> Minutes:
    """A validated document from plain inputs: nested items may be dataclasses or mappings,
    times aware datetimes or ISO strings, dates ``date`` or ``YYYY-MM-DD``. Texts are stripped
    and NFC-normalised so the same content always serialises the same way."""
    unknown = set(data) - {f.name for f in fields(Minutes)}
    if unknown:
        raise ValidationFailed(f"Trường không hợp lệ: {', '.join(sorted(unknown))}", code="field_unknown")
    for name in ("title", "started_at", "ended_at", "chair", "agency", "symbol"):
        if name not in data:
            raise ValidationFailed(f"Thiếu trường bắt buộc '{name}'", code="field_required", field=name)
    published = data.get("published_at")
    signer = data.get("signer")
    meeting_id = data.get("meeting_id")
    version = data.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValidationFailed("Số phiên bản phải là số nguyên", code="field_invalid", field="version")
    if meeting_id is not None and (isinstance(meeting_id, bool) or not isinstance(meeting_id, int)):
        raise ValidationFailed("Mã hội nghị phải là số nguyên", code="field_invalid", field="meeting_id")
    return Minutes(
        title=values.text(data["title"], "title"),
        started_at=values.when(data["started_at"], "started_at"),
        ended_at=values.when(data["ended_at"], "ended_at"),
        chair=_chair(data["chair"]),
        agency=values.text(data["agency"], "agency"),
        symbol=values.text(data["symbol"], "symbol"),
        number=values.text(data.get("number", ""), "number"),
        superior_agency=values.text(data.get("superior_agency", ""), "superior_agency"),
        place=values.text(data.get("place", "Hà Nội"), "place"),
        venue=values.text(data.get("venue", "trực tuyến"), "venue"),
        attendance=tuple(_site(x) for x in values.items(data.get("attendance", ()), "attendance")),
        floor=tuple(_turn(x) for x in values.items(data.get("floor", ()), "floor")),
        kpis=tuple(_kpi(x) for x in values.items(data.get("kpis", ()), "kpis")),
        conclusions=tuple(_conclusion(x) for x in values.items(data.get("conclusions", ()), "conclusions")),
        recipients=tuple(values.text(x, "recipients") for x in values.items(data.get("recipients", ()), "recipients")),
        signer=None if signer is None else _signer(signer),
        meeting_id=meeting_id,
        version=version,
        correction_reason=values.text(data.get("correction_reason", ""), "correction_reason"),
        published_at=None if published is None else values.when(published, "published_at"),
        supersedes=values.text(data.get("supersedes", ""), "supersedes"),
    )


def to_dict(doc: Minutes) -> dict[str, Any]:
    """Plain JSON-ready data (enums as values, times as UTC ISO strings, dates as ISO)."""
    out = _plain(doc)
    assert isinstance(out, dict)
    return {"schema": SCHEMA, **out}


def from_dict(data: Mapping[str, Any]) -> Minutes:
    body = dict(data)
    schema = body.pop("schema", SCHEMA)
    if schema not in (1, SCHEMA) or isinstance(schema, bool):
        raise ValidationFailed(f"Không đọc được biên bản định dạng {schema!r}", code="schema_unsupported")
    if schema == 1:
        body = _from_schema1(body)
    return build_minutes(**body)


def _from_schema1(body: dict[str, Any]) -> dict[str, Any]:
    conclusions = body.get("conclusions")
    if not isinstance(conclusions, list):
        return body
    def upgrade(d: Any) -> Any:
        old = d.get("priority") if isinstance(d, Mapping) else None
        return {**d, "priority": _SCHEMA1_PRIORITY[old]} if isinstance(old, str) and old in _SCHEMA1_PRIORITY else d

    fixed = [{**c, "directives": [upgrade(d) for d in c["directives"]]}
             if isinstance(c, Mapping) and isinstance(c.get("directives"), list) else c for c in conclusions]
    return {**body, "conclusions": fixed}


def to_json(doc: Minutes) -> str:
    """Canonical JSON: sorted keys, no spaces, UTF-8 text kept as is. Same content, same bytes."""
    return json.dumps(to_dict(doc), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def from_json(text: str | bytes) -> Minutes:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValidationFailed("Biên bản không phải JSON hợp lệ", code="json_invalid") from exc
    if not isinstance(data, dict):
        raise ValidationFailed("Biên bản phải là một đối tượng JSON", code="json_invalid")
    return from_dict(data)


def content_hash(doc: Minutes) -> str:
    """SHA-256 (hex) of the canonical JSON: identifies one version's exact content."""
    return hashlib.sha256(to_json(doc).encode("utf-8")).hexdigest()


def correct(doc: Minutes, changes: Mapping[str, Any], reason: str, *, at: datetime) -> Minutes:
    """A corrected new version (version + 1, ``reason`` required, published ``at``). ``doc`` is
    left as it was; the new version records ``doc``'s content hash in ``supersedes``."""
    values.reject_controls_in({**changes, "reason": reason}, multi_line={"reason", "attendance", "conclusions"})
    why = values.norm(reason) if isinstance(reason, str) else ""
    if not why:
        raise ValidationFailed("Cần ghi lý do đính chính biên bản", code="reason_required", field="reason")
    if doc.published_at is None:
        raise ValidationFailed("Biên bản chưa công bố: chưa thể đính chính", code="not_published")
    if not changes:
        raise ValidationFailed("Không có nội dung đính chính", code="no_changes")
    refused = set(changes) - CORRECTABLE
    if refused:
        raise ValidationFailed(f"Không thể đính chính trường: {', '.join(sorted(refused))}",
                               code="field_not_correctable")
    when = values.when(at, "at")
    if when < doc.published_at:
        raise ValidationFailed("Thời điểm đính chính sớm hơn thời điểm công bố", code="correction_before_publish")
    base = {k: v for k, v in to_dict(doc).items() if k != "schema"}
    candidate = build_minutes(**{**base, **changes, "version": doc.version + 1, "correction_reason": why,
                                 "published_at": when, "supersedes": content_hash(doc)})
    if all(getattr(candidate, name) == getattr(doc, name) for name in CORRECTABLE):
        raise ValidationFailed("Bản đính chính không thay đổi nội dung nào", code="no_changes")
    return candidate


# ---------------------------------------------------------------------------------------------
# The document's parts, read from data (the value readers are in sessions.values)


def _chair(value: Any) -> Chair:
    m = values.record(value, Chair, "chair")
    return Chair(name=values.text(m.get("name", ""), "chair.name", limit=MAX_NAME),
                 title=values.text(m.get("title", ""), "chair.title", limit=MAX_NAME),
                 unit=values.text(m.get("unit", ""), "chair.unit", limit=MAX_NAME))


def _signer(value: Any) -> Signer:
    m = values.record(value, Signer, "signer")
    return Signer(title=values.text(m.get("title", ""), "signer.title", limit=MAX_NAME),
                  name=values.text(m.get("name", ""), "signer.name", limit=MAX_NAME),
                  authority=values.text(m.get("authority", ""), "signer.authority", limit=MAX_NAME))


def _site(value: Any) -> SiteAttendance:
    m = values.record(value, SiteAttendance, "attendance")
    return SiteAttendance(unit_code=values.text(m.get("unit_code", ""), "attendance.unit_code", limit=MAX_NAME),
                          unit_name=values.text(m.get("unit_name", ""), "attendance.unit_name", limit=MAX_NAME),
                          level=values.choice(Level, m.get("level"), "attendance.level", "Cấp đơn vị"),
                          status=values.choice(Attendance, m.get("status"), "attendance.status",
                                               "Trạng thái điểm danh"),
                          reason=values.text(m.get("reason", ""), "attendance.reason"),
                          parent=values.text(m.get("parent", ""), "attendance.parent", limit=MAX_NAME))


def _turn(value: Any) -> FloorTurn:
    m = values.record(value, FloorTurn, "floor")
    return FloorTurn(speaker=values.text(m.get("speaker", ""), "floor.speaker", limit=MAX_NAME),
                     unit_name=values.text(m.get("unit_name", ""), "floor.unit_name", limit=MAX_NAME),
                     started_at=values.when(m.get("started_at"), "floor.started_at"),
                     ended_at=values.when(m.get("ended_at"), "floor.ended_at"))


def _kpi(value: Any) -> KpiRow:
    m = values.record(value, KpiRow, "kpis")
    den = m.get("den")
    return KpiRow(code=values.text(m.get("code", ""), "kpis.code", limit=MAX_NAME),
                  name=values.text(m.get("name", ""), "kpis.name", limit=MAX_NAME),
                  unit=values.text(m.get("unit", ""), "kpis.unit", limit=MAX_NAME),
                  num=values.integer(m.get("num"), "kpis.num"),
                  den=None if den is None else values.integer(den, "kpis.den"),
                  phase=values.choice(KpiPhase, m.get("phase"), "kpis.phase", "Thời điểm chụp số liệu"),
                  scope=values.text(m.get("scope", ""), "kpis.scope", limit=MAX_NAME))


def _directive(value: Any) -> DirectiveEntry:
    m = values.record(value, DirectiveEntry, "directives")
    return DirectiveEntry(
        text=values.text(m.get("text", ""), "directives.text"),
        assignees=tuple(values.text(a, "directives.assignees", limit=MAX_NAME)
                        for a in values.items(m.get("assignees", ()), "directives.assignees")),
        deadline=values.day(m.get("deadline"), "directives.deadline"),
        lead=values.text(m.get("lead", ""), "directives.lead", limit=MAX_NAME),
        cooperating=tuple(values.text(a, "directives.cooperating", limit=MAX_NAME)
                          for a in values.items(m.get("cooperating", ()), "directives.cooperating")),
        priority=values.choice(Priority, m.get("priority", Priority.NORMAL), "directives.priority", "Mức độ ưu tiên"),
        assignee_group=values.text(m.get("assignee_group", ""), "directives.assignee_group", limit=MAX_NAME),
        directive_id=None if m.get("directive_id") is None else values.integer(m.get("directive_id"),
                                                                                "directives.directive_id"))


def _conclusion(value: Any) -> Conclusion:
    m = values.record(value, Conclusion, "conclusions")
    return Conclusion(text=values.text(m.get("text", ""), "conclusions.text"),
                      directives=tuple(_directive(d) for d in values.items(m.get("directives", ()), "directives")))


def _plain(value: Any) -> Any:
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    return value
