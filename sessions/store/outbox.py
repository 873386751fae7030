"""The transactional outbox (issue #18): a bus event is stored in the same transaction as the change
it announces, so a commit cannot happen without its event surviving somewhere. After the commit the
service publishes it at once and marks it delivered; what was not (the bus was down, the process
died in between) is claimed by one process's dispatcher (``server.services.outbox``), published in
id order and marked. Delivered rows are purged after a while.

A claim is a time-limited hold (``claimed_until``) taken in one statement — ``UPDATE … WHERE id IN
(SELECT … FOR UPDATE SKIP LOCKED) … RETURNING`` on PostgreSQL; SQLite has one writer at a time, so
the same statement without the row locks is already exclusive — so two dispatchers never publish
the same row at the same time, and a dispatcher that dies holding rows only delays them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sessions.models import OutboxEvent


@dataclass(frozen=True, slots=True)
class Pending:
    id: int
    topic: str
    payload: bytes


async def add(db: AsyncSession, messages: Iterable[tuple[str, bytes]], at: datetime) -> list[int]:
    """Store ``messages`` (topic, payload) in the caller's transaction; their ids, in order."""
    rows = [OutboxEvent(topic=topic, payload=payload, created_at=at) for topic, payload in messages]
    if not rows:
        return []
    db.add_all(rows)
    await db.flush()
    return [r.id for r in rows]


def _claimable(now: datetime) -> list[ColumnElement[bool]]:
    return [OutboxEvent.delivered_at.is_(None),
            or_(OutboxEvent.claimed_until.is_(None), OutboxEvent.claimed_until < now)]


async def claim(db: AsyncSession, now: datetime, *, created_before: datetime, until: datetime,
                limit: int = 500) -> list[Pending]:
    """Hold (until ``until``) the oldest undelivered rows created before ``created_before`` that no
    one else holds; they come back in id order."""
    ids = (select(OutboxEvent.id).where(*_claimable(now), OutboxEvent.created_at < created_before)
           .order_by(OutboxEvent.id).limit(limit).with_for_update(skip_locked=True))
    result = await db.execute(
        update(OutboxEvent).where(OutboxEvent.id.in_(ids.scalar_subquery()), *_claimable(now))
        .values(claimed_until=until).returning(OutboxEvent.id, OutboxEvent.topic, OutboxEvent.payload)
        .execution_options(synchronize_session=False))
    return sorted((Pending(r[0], r[1], r[2]) for r in result.all()), key=lambda p: p.id)


async def mark(db: AsyncSession, ids: list[int], at: datetime) -> None:
    """``ids`` were published."""
    if ids:
        await db.execute(update(OutboxEvent).where(OutboxEvent.id.in_(ids))
                         .values(delivered_at=at, claimed_until=None).execution_options(synchronize_session=False))


async def release(db: AsyncSession, ids: list[int]) -> None:
    """``ids`` were claimed but not published (the bus refused): free for the next attempt."""
    if ids:
        await db.execute(update(OutboxEvent).where(OutboxEvent.id.in_(ids), OutboxEvent.delivered_at.is_(None))
                         .values(claimed_until=None).execution_options(synchronize_session=False))


async def purge(db: AsyncSession, delivered_before: datetime) -> int:
    """Forget rows delivered before ``delivered_before``; how many."""
    result = await db.execute(delete(OutboxEvent).where(OutboxEvent.delivered_at < delivered_before)
                              .execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def backlog(db: AsyncSession) -> tuple[int, datetime | None]:
    """How many rows wait for the bus, and since when the oldest does."""
    row = (await db.execute(select(func.count(), func.min(OutboxEvent.created_at))
                            .where(OutboxEvent.delivered_at.is_(None)))).one()
    return int(row[0]), row[1]  # min() keeps the column type: aware UTC on both backends
