"""Recordings of meetings (issue #17): the chair's wish and what a bridge is doing about it, each
recording a bridge made, and its segments (files under the recordings folder).

Not imported by ``sessions.models`` (a package other areas share): ``sessions.store.recordings``
imports it, which registers the tables on ``Base.metadata`` before any query runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from sessions.models.base import Base, UTCDateTime, utcnow


class MeetingRecording(Base):
    """One row per meeting whose recording anyone spoke of; no row = recorded while live."""

    __tablename__ = "meeting_recording"

    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), primary_key=True)
    wanted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    notice: Mapped[str] = mapped_column(String(300), nullable=False, default="")  # told to the chair ("" = none)
    # provincial bridges (unit codes) the chair asked to record their own programme too (migration 0018)
    bridges: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class Recording(Base):
    __tablename__ = "recordings"
    __table_args__ = (UniqueConstraint("meeting_id", "name", name="uq_recordings_meeting_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), index=True, nullable=False)
    bridge_unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), nullable=False)
    name: Mapped[str] = mapped_column(String(40), nullable=False)  # the bridge's name for it (its start, UTC)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="recording")
    chapters: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False, default=list)


class RecordingSegment(Base):
    __tablename__ = "recording_segments"
    __table_args__ = (UniqueConstraint("recording_id", "idx", name="uq_recording_segments_idx"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id", ondelete="CASCADE"), index=True,
                                              nullable=False)
    idx: Mapped[int] = mapped_column(Integer, nullable=False)
    path: Mapped[str] = mapped_column(String(300), nullable=False)  # relative to the recordings folder
    offset_s: Mapped[float] = mapped_column(Float, nullable=False)  # from the recording's start
    duration_s: Mapped[float] = mapped_column(Float, nullable=False)
    bytes: Mapped[int] = mapped_column(Integer, nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    chapters: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False, default=list)
