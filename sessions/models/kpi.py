"""KPI reports, totals, meeting snapshots and the indicator catalog."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from sessions.models.base import Base, UTCDateTime


class KpiReport(Base):
    """One received KPI report. A correction (same unit and report id, other values) adds the next
    version and marks the previous one superseded: history is kept, only the current version counts."""

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
        # A report id names a report of one unit: two units may each have their own report "1".
        UniqueConstraint("unit_id", "report_id", "version", name="uq_kpi_reports_unit_report_version"),
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
    # A slide's "previous meeting" looks a unit's concluded snapshots up by unit and period.
    __table_args__ = (Index("ix_meeting_kpi_snapshots_unit", "unit_id", "period", "phase", "taken_at"),)

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
