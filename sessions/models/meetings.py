"""Meetings, their participants (the roll call), attendance, floor turns, presence leases."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from sessions.models.base import Base, UTCDateTime, utcnow


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
    # The presiding official and the signer of the notice of conclusions (#15), set by the chair
    # before or at the conclusion; "" until set (sessions.store.minutes.set_presiding).
    presiding_title: Mapped[str] = mapped_column(String(100), nullable=False, default="", server_default="")
    presiding_name: Mapped[str] = mapped_column(String(100), nullable=False, default="", server_default="")
    signer_authority: Mapped[str] = mapped_column(String(100), nullable=False, default="", server_default="")
    signer_title: Mapped[str] = mapped_column(String(100), nullable=False, default="", server_default="")
    signer_name: Mapped[str] = mapped_column(String(100), nullable=False, default="", server_default="")

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
