"""Snapshot + events = fresh snapshot, for every event type, whatever order events arrive in.

Random sequences of every live action run against the real store (SQLite); at a random point a
snapshot is taken; the events emitted afterwards are applied to it (shuffled, as events from
several server processes may interleave) and the result must equal a snapshot taken at the end.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server import db as dbmod
from sessions.errors import DomainError
from sessions.meetings import Attendance, MeetingState
from sessions.store import floor, live, units
from sessions.store import meetings as mstore
from sessions.store.live import LiveEvent
from sessions.units import Level
from tests.conftest import TREE

SITES = ["01", "00070", "00004", "25", "08707", "08740", "79", "760", "26734"]
OPS = ["connect", "disconnect", "in_person", "absent", "reset", "raise", "lower", "grant", "next", "revoke",
       "mute", "unmute", "state"]


def apply(snapshot_meeting: dict[str, Any], seats: dict[int, dict[str, Any]], event: LiveEvent) -> dict[str, Any]:
    wire = event.wire()
    if wire["kind"] == "meeting":
        if wire["data"]["seq"] >= snapshot_meeting["seq"]:
            snapshot_meeting = wire["data"]
    else:
        row = wire["data"]
        old = seats.get(row["unit_id"])
        if old is None or row["seq"] >= old["seq"]:
            seats[row["unit_id"]] = row
    return snapshot_meeting


async def run(db_path: Path, steps: list[tuple[str, int]], cut: int, seed: int) -> None:
    url = f"sqlite+aiosqlite:///{db_path}"
    await dbmod.upgrade(url)
    engine = dbmod.make_engine(url)
    factory = dbmod.sessionmaker(engine)
    try:
        async with dbmod.transaction(factory) as s:
            if await units.root(s) is None:
                await units.import_units(s, list(TREE))
            root = await units.get_by_code(s, "BCA")
            ids = {code: (await units.get_by_code(s, code)).id for code in SITES}
            mid = await mstore.schedule(s, title="p", agenda=[], start=datetime(2030, 1, 1, tzinfo=UTC),
                                        chair_unit_id=root.id, created_by_id=None,
                                        selectors=[mstore.Selector("BCA", (Level.PROVINCE, Level.DISTRICT,
                                                                           Level.COMMUNE))])
        at = datetime(2030, 1, 1, tzinfo=UTC)
        snapshot: tuple[dict[str, Any], dict[int, dict[str, Any]]] | None = None
        after: list[LiveEvent] = []
        for i, (op, site_index) in enumerate(steps):
            if i == cut:
                async with factory() as s:
                    m = await live.meeting_snapshot(s, mid, None)
                    r = await live.rollcall_snapshot(s, mid, root.id)
                snapshot = (m["meeting"], {row["unit_id"]: row for row in r["seats"]})
            uid = ids[SITES[site_index % len(SITES)]]
            at += timedelta(seconds=1)
            try:
                async with dbmod.transaction(factory) as s:
                    events = await _op(s, op, mid, uid, at)
            except DomainError:
                events = []  # refused: nothing changed, nothing emitted
            if snapshot is not None:
                after.extend(events)
        if snapshot is None:
            return
        meeting, seats = snapshot
        random.Random(seed).shuffle(after)
        for event in after:
            meeting = apply(meeting, seats, event)
        async with factory() as s:
            fresh_m = (await live.meeting_snapshot(s, mid, None))["meeting"]
            fresh_r = await live.rollcall_snapshot(s, mid, root.id)
        fresh_seats = {row["unit_id"]: row for row in fresh_r["seats"]}
        assert seats == fresh_seats
        assert {k: v for k, v in meeting.items() if k != "seq"} == {k: v for k, v in fresh_m.items() if k != "seq"}
    finally:
        await engine.dispose()


async def _op(s: Any, op: str, mid: int, uid: int, at: datetime) -> list[LiveEvent]:
    if op == "connect":
        return await live.connect(s, mid, uid, at)
    if op == "disconnect":
        return await live.disconnect(s, mid, uid, at)
    if op == "in_person":
        return await live.mark(s, mid, uid, Attendance.PRESENT_IN_PERSON, "", "t")
    if op == "absent":
        return await live.mark(s, mid, uid, Attendance.ABSENT, "Mất điện", "t")
    if op == "reset":
        return await live.mark(s, mid, uid, Attendance.NOT_CALLED, "", "t")
    if op in ("raise", "lower"):
        return await floor.set_hand(s, mid, uid, op == "raise", at)
    if op == "grant":
        return await floor.grant(s, mid, uid, at, "t")
    if op == "next":
        return await floor.next_speaker(s, mid, at, "t")
    if op == "revoke":
        return await floor.revoke(s, mid, at, "t")
    if op in ("mute", "unmute"):
        return await floor.set_muted(s, mid, uid, op == "mute")
    current = MeetingState((await mstore.get(s, mid)).state)
    target = {MeetingState.SCHEDULED: MeetingState.REHEARSAL, MeetingState.REHEARSAL: MeetingState.LIVE}.get(
        current, MeetingState.CONCLUDED)
    seq, _old, _new, touched = await mstore.change_state(s, mid, target, at=at, by_user_id=None, by_name="t")
    return [await live.meeting_event(s, mid, seq)] + [await live.seat_event(s, mid, u, seq) for u in touched]


step = st.tuples(st.sampled_from(OPS), st.integers(0, len(SITES) - 1))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.lists(st.sampled_from(["state"]), min_size=2, max_size=2),
       steps=st.lists(step, min_size=1, max_size=40), cut=st.integers(0, 45), seed=st.integers(0, 10**6))
def test_snapshot_plus_events_equals_fresh_snapshot(tmp_path: Path, prefix: list[str], steps: list[tuple[str, int]],
                                                    cut: int, seed: int) -> None:
    # Open the meeting first (two state steps: rehearsal, live) so most actions are legal.
    plan = [(p, 0) for p in prefix] + steps
    asyncio.run(run(tmp_path / "prop.sqlite3", plan, min(cut, len(plan) - 1), seed))


def test_every_event_type_is_exercised(tmp_path: Path) -> None:
    """One deterministic run that passes through every operation at least once after the cut."""
    plan = [("state", 0), ("state", 0)] + [(op, i) for i, op in enumerate(OPS) for _ in range(2)]
    plan += [("raise", 3), ("raise", 4), ("next", 0), ("disconnect", 4), ("state", 0)]
    asyncio.run(run(tmp_path / "all.sqlite3", plan, 2, 7))
