"""Batched presence (many sites joining or leaving at once, written together) ends in exactly
the state that one-by-one connects and disconnects produce: seats and attendance intervals."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server import db as dbmod
from sessions.meetings import MeetingState
from sessions.models import AttendanceInterval
from sessions.store import live, units
from sessions.store import meetings as mstore
from sessions.units import Level
from tests.conftest import TREE

SITES = ["00070", "00004", "08707", "08740", "26734"]


async def _meeting(s: Any, root_id: int) -> int:
    mid = await mstore.schedule(s, title="p", agenda=[], start=datetime(2030, 1, 1, tzinfo=UTC),
                                chair_unit_id=root_id, created_by_id=None,
                                selectors=[mstore.Selector("BCA", (Level.PROVINCE, Level.DISTRICT, Level.COMMUNE))])
    for target in (MeetingState.REHEARSAL, MeetingState.LIVE):
        await mstore.change_state(s, mid, target, at=datetime(2030, 1, 1, tzinfo=UTC), by_user_id=None, by_name="t")
    return mid


async def _state(s: Any, mid: int, root_id: int) -> tuple[dict[str, Any], list[tuple[int, Any, Any]]]:
    from sqlalchemy import select

    seats = {r["code"]: {k: v for k, v in r.items() if k != "seq"}
             for r in (await live.rollcall_snapshot(s, mid, root_id))["seats"]}
    rows = (await s.execute(select(AttendanceInterval.unit_id, AttendanceInterval.joined_at,
                                   AttendanceInterval.left_at).where(AttendanceInterval.meeting_id == mid)
                            .order_by(AttendanceInterval.unit_id, AttendanceInterval.joined_at))).all()
    return seats, [tuple(r) for r in rows]


async def run(path: Path, batches: list[list[tuple[int, bool]]]) -> None:
    url = f"sqlite+aiosqlite:///{path}"
    await dbmod.upgrade(url)
    engine = dbmod.make_engine(url)
    factory = dbmod.sessionmaker(engine)
    try:
        async with dbmod.transaction(factory) as s:
            if await units.root(s) is None:
                await units.import_units(s, list(TREE))
            root = (await units.get_by_code(s, "BCA")).id
            ids = [(await units.get_by_code(s, c)).id for c in SITES]
            batched, single = await _meeting(s, root), await _meeting(s, root)
        at = datetime(2030, 1, 1, 8, tzinfo=UTC)
        for batch in batches:
            at += timedelta(seconds=7)
            changes = [(ids[i], up) for i, up in batch]
            async with dbmod.transaction(factory) as s:
                events = await live.presence_many(s, batched, changes, at)
            assert len({e.data["unit_id"] for e in events}) == len(events) == len({u for u, _ in changes})
            for uid, up in changes:
                async with dbmod.transaction(factory) as s:
                    await (live.connect if up else live.disconnect)(s, single, uid, at)
        async with factory() as s:
            assert await _state(s, batched, root) == await _state(s, single, root)
    finally:
        await engine.dispose()


change = st.tuples(st.integers(0, len(SITES) - 1), st.booleans())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(change, min_size=1, max_size=8), min_size=1, max_size=6))
def test_batched_presence_equals_one_by_one(tmp_path: Path, batches: list[list[tuple[int, bool]]]) -> None:
    asyncio.run(run(tmp_path / "presence.sqlite3", batches))
