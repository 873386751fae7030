"""Slides pushed to every screen of a meeting (issue #14): the chair or a province operator shows
one slide on all the site pages below it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from sessions.models.base import Base, UTCDateTime


class SlidePush(Base):
    """One active push: the sites of ``scope_unit_id``'s subtree show the slide of
    ``slide_unit_id`` instead of their own. ``seq`` is the meeting seq of the push: the newest
    applicable push wins (``sessions.slide_push``). A release deletes the row."""

    __tablename__ = "slide_pushes"

    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), primary_key=True)
    scope_unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), primary_key=True)
    slide_unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    pushed_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    pushed_by: Mapped[str] = mapped_column(String(100), nullable=False, default="")
