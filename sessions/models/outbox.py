"""The transactional outbox: bus events written in the same transaction as the change they announce."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from sessions.models.base import Base, UTCDateTime


class OutboxEvent(Base):
    """One bus message (topic, bytes) waiting to be published, or published (``delivered_at``) and
    kept a while. ``claimed_until``: a dispatcher publishing it now; others leave it until then."""

    __tablename__ = "outbox_events"
    __table_args__ = (Index("ix_outbox_events_delivered_id", "delivered_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    topic: Mapped[str] = mapped_column(String(200), nullable=False)
    payload: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
