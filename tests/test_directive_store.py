"""The store on both databases: the dashboard's SQL buckets agree with the Python rule at every
instant (including the exact deadline instant), and the cascade's depth and province are stored."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from server.db import transaction
from sessions.directives import AssigneeSpec, Bucket, DirectiveInput, Priority, bucket, due_at
from sessions.meetings import MeetingState
from sessions.models import Assignment, Meeting
from sessions.store import directive_views, units
from sessions.store import directives as store
from sessions.store.audit import CLI
from sessions.units import Level
from tests.conftest import seed

NOW = datetime(2022, 8, 17, 8, 0, tzinfo=UTC)


async def test_sql_buckets_agree_with_the_rule(session_factory: Any) -> None:
    async with transaction(session_factory) as db:
        await seed(db)
        ministry = await units.get_by_code(db, "BCA")
        meeting = Meeting(title="Sơ kết Đề án 06", agenda=[], scheduled_start=NOW, chair_unit_id=ministry.id,
                          selectors=[], state=MeetingState.LIVE.value, seq=0)
        db.add(meeting)
        await db.flush()
        cid = await store.add_conclusion(db, meeting.id, "Kết luận", CLI, NOW)
        for i in range(12):
            spec = AssigneeSpec(every_under="BCA", every_level=Level.COMMUNE if i % 2 else Level.PROVINCE)
            await store.create_directive(db, cid, DirectiveInput(f"Chỉ đạo {i}", date(2022, 9, 1 + i), Priority.NORMAL,
                                                                 spec, True), actor=CLI, now=NOW)
    rng = random.Random(6)
    async with transaction(session_factory) as db:
        rows = (await db.execute(select(Assignment.id, Assignment.due_at))).all()
        for aid, due in rows:  # a third open, the rest done around the deadline (some exactly on it)
            if rng.random() < 0.33:
                continue
            done = due + timedelta(hours=rng.choice([-30, -1, 0, 0, 1, 30]))
            await db.execute(update(Assignment).where(Assignment.id == aid).values(
                completed_at=done, percent=100, outcome=bucket(due, done, done).value))
    async with session_factory() as db:
        assignments = (await db.execute(select(Assignment))).scalars().all()
        instants = [due_at(date(2022, 9, 1 + i)) + timedelta(seconds=s) for i in (0, 5, 11) for s in (-1, 0, 1)]
        for now in [NOW, *instants, datetime(2023, 1, 1, tzinfo=UTC)]:
            want = Counter(bucket(a.due_at, a.completed_at, now).value for a in assignments)
            board = await directive_views.dashboard(db, ministry.id, now)
            assert {k: v for k, v in board["totals"].items() if v} == dict(want), now
            hanoi = await units.get_by_code(db, "01")
            row = next(r for r in board["rows"] if r["unit"]["code"] == "01")
            assert row["counts"] == (await directive_views.dashboard(db, hanoi.id, now))["totals"]
            listed = await directive_views.list_for_unit(db, hanoi.id, now)
            ranks = [[Bucket.OPEN_OVERDUE, Bucket.OPEN_WITHIN, Bucket.DONE_LATE, Bucket.DONE_ON_TIME].index(
                Bucket(a["bucket"])) for a in listed]
            assert ranks == sorted(ranks)  # overdue first
            for a in listed:
                assert a["bucket"] == bucket(datetime.fromisoformat(a["due_at"]),
                                             datetime.fromisoformat(a["completed_at"]) if a["completed_at"] else None,
                                             now).value
        # Denormalised for the dashboard: each commune's province, depth 0 for the chair's directives.
        saigon = await units.get_by_code(db, "26734")
        hcm = await units.get_by_code(db, "79")
        mine = [a for a in assignments if a.unit_id == saigon.id]
        assert mine and all(a.province_id == hcm.id and a.depth == 0 for a in mine)
