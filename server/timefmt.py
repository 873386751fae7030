"""Times are stored in UTC and shown in Asia/Ho_Chi_Minh."""

from __future__ import annotations

from datetime import UTC, datetime

from sessions.timezone import VN


def local(dt: datetime | None, fmt: str = "%H:%M %d/%m/%Y") -> str:
    return dt.astimezone(VN).strftime(fmt) if dt else ""


def parse_local(text: str) -> datetime:
    """A ``datetime-local`` form value (or ISO with offset) → aware UTC."""
    value = datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        value = value.replace(tzinfo=VN)
    return value.astimezone(UTC)
