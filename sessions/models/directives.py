"""Conclusions, directives and assignments, progress reports, attachments, minutes."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from sessions.models.base import Base, UTCDateTime


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
