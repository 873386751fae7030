"""Presence that cannot drift (issue #18), under real faults: two ``hoinghi serve`` processes on a
PostgreSQL and a Redis of the test's own (tests.faults_util), 300 simulated sites (bridges that
``join``, reconnecting by themselves), the chair's console on each process, KPI reports flowing
(tests.fault_drill). For each fault — PostgreSQL restart, Redis restart, SIGKILL of one process,
SIGTERM of both — once it is over: every seat's online state equals the connections actually open,
both consoles equal the database, every open site shows the stored floor holder, every
acknowledged KPI report is stored once, and attendance shows the gaps.

The four cases share one drill (one pair of services, one pair of processes), in this order.
Waits are functional (until everyone agrees, bounded generously), never timed asserts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.fault_drill import Drill, Site, has_gap
from tests.faults_util import PrivatePostgres, PrivateRedis, private_postgres, private_redis  # noqa: F401

RECOVERY_S = 60  # generous: a loaded CI machine


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def drill(private_postgres: PrivatePostgres, private_redis: PrivateRedis,  # noqa: F811
                tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Drill]:
    d = Drill(private_postgres, private_redis, tmp_path_factory.mktemp("drill"))
    try:
        await d.prepare()
        yield d
    finally:
        await asyncio.to_thread(private_postgres.start)
        await asyncio.to_thread(private_redis.start)
        await d.close()


pytestmark = pytest.mark.asyncio(loop_scope="module")


def assert_agreed(d: Drill, db: dict[str, Any]) -> None:
    assert d.phantoms(db["online"]) == [], "seats whose online state differs from the open connections"
    assert d.stale_consoles(db) == 0, "a console differs from the database"
    assert d.stale_sites(db) == [], "open sites showing another floor holder than the database"
    lost, _unacked_stored, twice = d.lost_reports(db)
    assert (lost, twice) == (0, 0), "acknowledged KPI reports lost, or stored twice"
    assert d.acked, "KPI reports were flowing"


def pick(d: Drill, n: int, skip: int = 0) -> list[Site]:
    """``n`` sites, half of them on each process."""
    ones = [s for s in d.sites if s.home == 0][skip:skip + n // 2]
    return ones + [s for s in d.sites if s.home == 1][skip:skip + n - n // 2]


async def test_postgres_restart_leaves_no_phantom_seat(drill: Drill) -> None:
    d = drill
    gap, gone = pick(d, 10), pick(d, 10, skip=10)
    await asyncio.to_thread(d.pg.stop)
    await d.drop(gap + gone)  # their sockets close while the database is away
    await asyncio.sleep(1)  # the outage lasts a moment
    await asyncio.to_thread(d.pg.start)
    d.back(gap)
    db = await d.settled(RECOVERY_S)
    assert_agreed(d, db)
    assert all(db["online"][s.code] == 0 for s in gone)
    assert all(db["intervals"][s.code][-1][1] is not None for s in gone), "their attendance intervals closed"
    assert all(has_gap(db["intervals"][s.code]) for s in gap), "attendance shows the gap"
    d.back(gone)


async def test_redis_restart_floor_and_seats_reach_everyone(drill: Drill) -> None:
    d = drill
    gap = pick(d, 10, skip=20)
    await asyncio.to_thread(d.redis.stop)
    holder = d.sites[7].code
    resp = await d.chairs[0].api("POST", f"/api/meetings/{d.meeting}/floor", json={"action": "grant", "unit": holder})
    assert resp.status == 200, await resp.text()  # committed: a success, its event delivered later
    await d.drop(gap)
    await asyncio.sleep(1)
    await asyncio.to_thread(d.redis.start)
    d.back(gap)
    db = await d.settled(RECOVERY_S)
    assert db["floor"] == holder
    assert_agreed(d, db)
    assert all(has_gap(db["intervals"][s.code]) for s in gap)


async def test_sigkill_of_one_process_releases_its_sites_with_a_gap(drill: Drill) -> None:
    d = drill
    moved = [s for s in d.sites if s.home == 1]
    await d.sigkill(1)  # its sites reconnect through process 0
    await d.until(lambda: all(s.joined for s in d.sites), RECOVERY_S, "every site joined again")
    await d.start_server(1)
    await d.open_consoles()
    db = await d.settled(RECOVERY_S)
    assert_agreed(d, db)  # in particular no seat at online=2 once the dead process's lease expired
    assert all(has_gap(db["intervals"][s.code]) for s in moved), "attendance shows the gap of the move"


async def test_sigterm_of_both_records_every_leave(drill: Drill) -> None:
    d = drill
    await d.sigterm_all()
    db = await d.stored()
    assert d.open_sites() == set()
    assert [c for c, n in db["online"].items() if n] == [], "no seat online with no process running"
    assert [c for c, iv in db["intervals"].items() if iv[-1][1] is None] == [], "every interval closed"
    for i in range(2):
        await d.start_server(i)
    await d.open_consoles()
    db = await d.settled(RECOVERY_S)
    assert_agreed(d, db)
    assert all(has_gap(db["intervals"][s.code]) for s in d.sites)
