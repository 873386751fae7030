"""The outbox's storage (issue #18), on SQLite and PostgreSQL: an event is stored with its change or
not at all, claimed in id order once old enough, claimed by one dispatcher only, marked, freed,
purged; and the hub drops a late or repeated meeting event (what the outbox's redelivery causes)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from server import db as dbmod
from server.live.hub import Hub
from server.live.wire import encode
from sessions.models import OutboxEvent
from sessions.store import outbox
from sessions.store.live import LiveEvent

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


async def _add(factory: Any, n: int, at: datetime, topic: str = "meeting.1") -> list[int]:
    async with dbmod.transaction(factory) as db:
        return await outbox.add(db, [(topic, f"m{i}".encode()) for i in range(n)], at)


async def test_an_event_is_stored_with_its_change_or_not_at_all(session_factory: Any) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with dbmod.transaction(session_factory) as db:
            await outbox.add(db, [("meeting.1", b"lost with its change")], T0)
            raise Boom
    async with session_factory() as db:
        assert await outbox.backlog(db) == (0, None)
    ids = await _add(session_factory, 3, T0)
    assert ids == sorted(ids) and len(set(ids)) == 3
    async with session_factory() as db:
        assert await outbox.backlog(db) == (3, T0)


async def test_claim_mark_release_purge(session_factory: Any) -> None:
    old = await _add(session_factory, 3, T0)
    young = await _add(session_factory, 2, T0 + timedelta(seconds=5))
    now = T0 + timedelta(seconds=5, milliseconds=500)
    async with dbmod.transaction(session_factory) as db:  # only rows older than the cut-off, in id order
        got = await outbox.claim(db, now, created_before=T0 + timedelta(seconds=1), until=now + timedelta(seconds=10))
    assert [p.id for p in got] == old and [p.payload for p in got] == [b"m0", b"m1", b"m2"]
    assert {p.topic for p in got} == {"meeting.1"}
    later = now + timedelta(seconds=1)
    async with dbmod.transaction(session_factory) as db:  # held: nobody else takes them meanwhile
        assert await outbox.claim(db, later, created_before=later, until=later + timedelta(seconds=10)) == \
            [outbox.Pending(i, "meeting.1", f"m{k}".encode()) for k, i in enumerate(young)]
        await outbox.mark(db, old[:2], later)
        await outbox.release(db, [old[2]])
    async with dbmod.transaction(session_factory) as db:  # the freed one comes back; marked ones never
        again = await outbox.claim(db, later, created_before=later, until=later + timedelta(seconds=10))
    assert [p.id for p in again] == [old[2]]
    expired = later + timedelta(seconds=11)  # a dispatcher that died holding rows only delayed them
    async with dbmod.transaction(session_factory) as db:
        assert [p.id for p in await outbox.claim(db, expired, created_before=expired,
                                                 until=expired + timedelta(seconds=10))] == [old[2], *young]
        await outbox.mark(db, [old[2], *young], expired)
        assert await outbox.backlog(db) == (0, None)
        assert await outbox.purge(db, later + timedelta(seconds=1)) == 2  # delivered before the cut-off
    async with session_factory() as db:
        left = (await db.execute(select(OutboxEvent.id).order_by(OutboxEvent.id))).scalars().all()
    assert left == [old[2], *young]


async def test_two_dispatchers_never_claim_the_same_row(session_factory: Any) -> None:
    await _add(session_factory, 120, T0)
    now = T0 + timedelta(seconds=2)
    claimed: list[list[int]] = []

    async def dispatcher() -> None:
        while True:
            try:
                async with dbmod.transaction(session_factory) as db:
                    got = await outbox.claim(db, now, created_before=now, until=now + timedelta(seconds=30), limit=7)
            except Exception as exc:  # SQLite: the other writer holds the database; try again
                if "locked" not in str(exc):
                    raise
                await asyncio.sleep(0.01)
                continue
            if not got:
                return
            claimed.append([p.id for p in got])
            await asyncio.sleep(0)

    await asyncio.gather(*(dispatcher() for _ in range(4)))
    every = [i for batch in claimed for i in batch]
    assert len(every) == 120 and len(set(every)) == 120, "a row was claimed twice (or lost)"
    assert all(batch == sorted(batch) for batch in claimed)


class _Conn:
    """What the hub needs of a connection: its subscriptions and a send."""

    def __init__(self) -> None:
        self.subs: dict[str, Any] = {}
        self.sent: list[bytes] = []

    def send(self, frame: bytes) -> None:
        self.sent.append(frame)


async def test_the_hub_drops_a_late_or_repeated_meeting_event() -> None:
    from server.live.hub import Subscription

    hub = Hub()
    conn = _Conn()
    sub = Subscription(conn, "rollcall:1:BCA", 1, "rollcall", 1)  # type: ignore[arg-type]
    hub.add(sub)
    hub.snapshot_sent(sub, 4)

    def seat(seq: int, online: int) -> bytes:
        return encode(LiveEvent(1, seq, "seat", {"unit_id": 7, "online": online, "seq": seq}, (7, 1)))

    def meeting(seq: int, floor: str) -> bytes:
        return encode(LiveEvent(1, seq, "meeting", {"seq": seq, "floor": floor}))

    for message in (meeting(5, "A"), seat(6, 1), meeting(7, "B"),
                    meeting(7, "B"),  # published twice (its "delivered" mark was lost)
                    meeting(5, "A"),  # late: the outbox published it after newer ones
                    seat(6, 1), seat(8, 0), seat(8, 1)):  # one change may move a seat twice (same seq)
        await hub.on_bus("meeting.1", message)
    got = [(m.split(b"\n", 1)[1]) for m in (meeting(5, "A"), seat(6, 1), meeting(7, "B"), seat(8, 0), seat(8, 1))]
    assert conn.sent == got
