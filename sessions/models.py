"""ORM models. Times are stored in UTC (aware on the way in and out, whatever the backend)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: same behaviour on SQLite and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Unit(Base):
    __tablename__ = "units"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    level: Mapped[str] = mapped_column(String(16), nullable=False)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class UnitClosure(Base):
    """Every ancestor/descendant pair (depth 0 = itself): a subtree is one indexed query."""

    __tablename__ = "unit_closure"

    ancestor_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), primary_key=True)
    descendant_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), primary_key=True)
    depth: Mapped[int] = mapped_column(Integer, nullable=False)

    __table_args__ = (Index("ix_unit_closure_descendant", "descendant_id", "depth"),)


class UnitTreeVersion(Base):
    """One row (id 1): bumped in the same transaction as every unit import that changes the tree, so
    a process holding the tree in memory (``sessions.store.units.subtree``) knows when to reload it."""

    __tablename__ = "unit_tree_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    __table_args__ = (CheckConstraint("id = 1", name="ck_unit_tree_version_one_row"),)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    full_name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True, nullable=False)
    role: Mapped[str] = mapped_column(String(32), nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class LoginRecord(Base):
    """Server-side login session; the cookie carries a random secret, we store its SHA-256."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False)
    csrf_token: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ip: Mapped[str] = mapped_column(String(64), nullable=False, default="")


class MachineToken(Base):
    """A bridge's or a source system's credential: scoped to a unit subtree and to scopes."""

    __tablename__ = "machine_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), nullable=False)
    scopes: Mapped[str] = mapped_column(String(200), nullable=False)
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    actor_kind: Mapped[str] = mapped_column(String(16), nullable=False)  # user | machine | anonymous | cli
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor_name: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    actor_unit_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    target: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    ip: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)

    __table_args__ = (
        Index("ix_audit_action_target_at", "action", "target", "at"),
        Index("ix_audit_action_ip_at", "action", "ip", "at"),
        Index("ix_audit_at", "at"),
    )


class Meeting(Base):
    __tablename__ = "meetings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(300), nullable=False)
    agenda: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    scheduled_start: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    chair_unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), nullable=False)
    selectors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False, default=list)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    # Every change to the meeting's live state bumps seq in the same transaction; events carry it,
    # so a client can apply "snapshot then events" with no gap and no duplicate.
    seq: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    floor_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    __table_args__ = (Index("ix_meetings_state_start", "state", "scheduled_start"),)


class MeetingTransition(Base):
    __tablename__ = "meeting_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), index=True, nullable=False)
    from_state: Mapped[str] = mapped_column(String(16), nullable=False)
    to_state: Mapped[str] = mapped_column(String(16), nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    by_name: Mapped[str] = mapped_column(String(100), nullable=False, default="")


class Participant(Base):
    """One participating unit of one meeting: its roll-call row, connection, hand and mute."""

    __tablename__ = "meeting_participants"

    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), primary_key=True)
    province_id: Mapped[int | None] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(24), nullable=False, default="not_called")
    reason: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    online: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    hand_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    muted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    muted_by: Mapped[str] = mapped_column(String(16), nullable=False, default="", server_default="")  # MuteBy
    marked_by: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    spoke_seconds: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    seq: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # meeting seq of its last change

    __table_args__ = (Index("ix_participants_meeting_province", "meeting_id", "province_id"),)


class AttendanceInterval(Base):
    __tablename__ = "attendance_intervals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), nullable=False)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), nullable=False)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_intervals_meeting_unit", "meeting_id", "unit_id"),)


class ServerInstance(Base):
    """A running server process, alive while it keeps ``seen_at`` fresh (``server.live.leases``)."""

    __tablename__ = "server_instances"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class PresenceLease(Base):
    """How many live connections of one site one server process holds: what must be disconnected
    for it if that process dies without saying so."""

    __tablename__ = "presence_leases"

    instance_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), primary_key=True)
    unit_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class FloorTurn(Base):
    __tablename__ = "floor_turns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), index=True, nullable=False)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    granted_by: Mapped[str] = mapped_column(String(100), nullable=False, default="")


class KpiReport(Base):
    """One received KPI report. A correction (same report id, other values) adds the next version
    and marks the previous one superseded: history is kept, only the current version counts."""

    __tablename__ = "kpi_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[str] = mapped_column(String(64), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    superseded: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), nullable=False)
    indicator: Mapped[str] = mapped_column(String(32), nullable=False)
    period: Mapped[str] = mapped_column(String(16), nullable=False)
    num: Mapped[int] = mapped_column(BigInteger, nullable=False)
    den: Mapped[int] = mapped_column(BigInteger, nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    reporter: Mapped[str] = mapped_column(String(100), nullable=False, default="")

    __table_args__ = (
        UniqueConstraint("report_id", "version", name="uq_kpi_reports_report_version"),
        Index("ix_kpi_reports_key", "unit_id", "indicator", "period"),
    )


class KpiTotal(Base):
    """Rolled-up value of one unit (its own reports plus all its descendants'), per indicator and period."""

    __tablename__ = "kpi_totals"

    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), primary_key=True)
    indicator: Mapped[str] = mapped_column(String(32), primary_key=True)
    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    num: Mapped[int] = mapped_column(BigInteger, nullable=False)
    den: Mapped[int] = mapped_column(BigInteger, nullable=False)

    __table_args__ = (Index("ix_kpi_totals_period", "period", "indicator"),)


class MeetingKpiSnapshot(Base):
    """KPI values of the chair's unit and every participating unit, frozen when the meeting goes
    live ("live") and when it concludes ("concluded") — the minutes' KPI record."""

    __tablename__ = "meeting_kpi_snapshots"

    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), primary_key=True)
    phase: Mapped[str] = mapped_column(String(16), primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), primary_key=True)
    indicator: Mapped[str] = mapped_column(String(32), primary_key=True)
    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    num: Mapped[int] = mapped_column(BigInteger, nullable=False)
    den: Mapped[int] = mapped_column(BigInteger, nullable=False)
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class KpiIndicator(Base):
    """An indicator an admin added to the catalog; the built-in Đề án 06 ones live in code."""

    __tablename__ = "kpi_indicators"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    kind: Mapped[str] = mapped_column(String(8), nullable=False)
    unit: Mapped[str] = mapped_column(String(32), nullable=False)
    direction: Mapped[str] = mapped_column(String(8), nullable=False)
    target: Mapped[float | None] = mapped_column(Float, nullable=True)
    green_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    amber_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    by_level: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    period: Mapped[str] = mapped_column(String(16), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)


class Conclusion(Base):
    """A conclusion the chair (or a secretary of the chair's unit) records during a live meeting."""

    __tablename__ = "conclusions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), index=True, nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    author_name: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class Directive(Base):
    """A task given to units: from a conclusion, or (a breakdown) from a unit's own assignment to
    units of its subtree. ``meeting_id`` is the meeting the cascade started from."""

    __tablename__ = "directives"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meeting_id: Mapped[int | None] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), index=True)
    conclusion_id: Mapped[int | None] = mapped_column(ForeignKey("conclusions.id", ondelete="CASCADE"), index=True)
    parent_assignment_id: Mapped[int | None] = mapped_column(
        ForeignKey("directive_assignments.id", ondelete="CASCADE", use_alter=True,
                   name="fk_directives_parent_assignment"), index=True)
    assigner_unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    deadline: Mapped[date] = mapped_column(Date, nullable=False)
    priority: Mapped[str] = mapped_column(String(16), nullable=False, default="normal")
    lead_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"))
    require_children_done: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_by_name: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class Assignment(Base):
    """One unit's part of a directive. ``province_id`` and ``due_at`` are copied from the unit's
    province and the directive's deadline so the chair's dashboard is one grouped index scan."""

    __tablename__ = "directive_assignments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    directive_id: Mapped[int] = mapped_column(ForeignKey("directives.id", ondelete="CASCADE"), index=True,
                                              nullable=False)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), nullable=False)
    province_id: Mapped[int | None] = mapped_column(Integer)
    depth: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # 0: from a conclusion
    role: Mapped[str] = mapped_column(String(16), nullable=False, default="assignee")
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    percent: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # "done_on_time" / "done_late", fixed when marked done (a done bucket never changes); NULL while
    # open — then only ``due_at`` against the clock tells within from overdue.
    outcome: Mapped[str | None] = mapped_column(String(16))
    overdue_flagged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the daily reminder's flag
    completed_by: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (
        UniqueConstraint("directive_id", "unit_id", name="uq_assignments_directive_unit"),
        # The dashboard's scan: (province, outcome) groups in index order, due_at read from the index.
        Index("ix_assignments_dashboard", "province_id", "outcome", "due_at"),
        Index("ix_assignments_unit_due", "unit_id", "due_at"),
        CheckConstraint("percent >= 0 AND percent <= 100", name="ck_assignments_percent"),
    )


class ProgressReport(Base):
    __tablename__ = "directive_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("directive_assignments.id", ondelete="CASCADE"),
                                               index=True, nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    percent: Mapped[int] = mapped_column(Integer, nullable=False)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    author_name: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class Attachment(Base):
    """A file attached to a progress report; the bytes live on disk under ``storage_path``
    (relative to the attachment folder setting)."""

    __tablename__ = "directive_attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("directive_reports.id", ondelete="CASCADE"), index=True,
                                           nullable=False)
    filename: Mapped[str] = mapped_column(String(255), nullable=False)
    content_type: Mapped[str] = mapped_column(String(100), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    storage_path: Mapped[str] = mapped_column(String(300), nullable=False)


class MeetingMinutes(Base):
    """One published version of a meeting's minutes: never updated; a correction adds a row."""

    __tablename__ = "meeting_minutes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    document: Mapped[str] = mapped_column(Text, nullable=False)  # sessions.minutes canonical JSON
    content_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)  # "" for the first version
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    published_by: Mapped[str] = mapped_column(String(100), nullable=False)

    __table_args__ = (UniqueConstraint("meeting_id", "version", name="uq_minutes_meeting_version"),)


__all__ = [
    "Assignment",
    "Attachment",
    "AttendanceInterval",
    "AuditEntry",
    "Base",
    "Conclusion",
    "Directive",
    "FloorTurn",
    "KpiIndicator",
    "KpiReport",
    "KpiTotal",
    "LoginRecord",
    "MachineToken",
    "Meeting",
    "MeetingKpiSnapshot",
    "MeetingMinutes",
    "MeetingTransition",
    "Participant",
    "ProgressReport",
    "UTCDateTime",
    "Unit",
    "UnitClosure",
    "UnitTreeVersion",
    "User",
    "utcnow",
]
