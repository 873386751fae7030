"""A server process that dies without a word (SIGKILL) does not leave its sites counted online:
another process sees its heartbeat stop and disconnects them as of its last sign of life; a
process wrongly taken for dead writes its connections again. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from server.db import transaction
from server.live import leases as leases_loop
from server.state import DB, INSTANCE, PRESENCE
from sessions.models import AttendanceInterval, PresenceLease, ServerInstance, Unit
from tests.conftest import PASSWORD, LiveServer
from tests.live_util import WsClient, free_port, schedule, set_state, spawn_server, wait_healthy
from tests.media_browser_util import WallClock

ROOT = Path(__file__).resolve().parent.parent
FAST = {"presence_heartbeat_seconds": 0.5, "presence_expiry_seconds": 2.0}
SITE = "08707"


async def _spawn(db_url: str, tmp_path: Path) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HOINGHI_")},
           "HOINGHI_DATABASE_URL": db_url, "HOINGHI_SECRET_KEY": "another-process-own-secret",
           "HOINGHI_VAR_DIR": str(tmp_path / "var-a"), "HOINGHI_LOG_LEVEL": "WARNING",
           "HOINGHI_PRESENCE_HEARTBEAT_SECONDS": str(FAST["presence_heartbeat_seconds"]),
           "HOINGHI_PRESENCE_EXPIRY_SECONDS": str(FAST["presence_expiry_seconds"])}
    proc = spawn_server(env, port)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(url, proc)
    except BaseException:
        proc.kill()
        raise
    return proc, url


async def _rows(srv: LiveServer, model: Any) -> list[Any]:
    async with transaction(srv.app[DB]) as db:
        return list((await db.execute(select(model))).scalars())


async def _intervals(srv: LiveServer, meeting_id: int, code: str) -> list[AttendanceInterval]:
    async with transaction(srv.app[DB]) as db:
        unit_id = (await db.execute(select(Unit.id).where(Unit.code == code))).scalar_one()
        return list((await db.execute(select(AttendanceInterval).where(
            AttendanceInterval.meeting_id == meeting_id, AttendanceInterval.unit_id == unit_id)
            .order_by(AttendanceInterval.id))).scalars())


async def test_a_killed_server_process_releases_its_sites(server_factory: Any, db_url: str, tmp_path: Path) -> None:
    b = await server_factory(db_url, clock=WallClock(), **FAST)
    proc, url_a = await _spawn(db_url, tmp_path)
    chair = await b.login("chutri")
    site_http = None
    console = site = None
    try:
        mid = await schedule(chair)
        await set_state(chair, mid, "rehearsal", "live")
        site_http = await LiveServer(url_a, None, None, None).login("vinhyen", PASSWORD)  # type: ignore[arg-type]
        site = await WsClient.open(site_http)  # connected through process A
        await site.request({"type": "join", "meeting": mid})
        instances = {i.id for i in await _rows(b, ServerInstance)}
        assert b.app[INSTANCE] in instances and len(instances) == 2
        lease = next(iter(await _rows(b, PresenceLease)))
        assert lease.instance_id != b.app[INSTANCE] and lease.count == 1  # A holds the site's connection

        console = await WsClient.open(chair)  # on B
        await console.request({"type": "subscribe", "topic": f"rollcall:{mid}:BCA"})
        assert (console.seat(SITE) or {}).get("online") == 1

        proc.send_signal(signal.SIGKILL)  # no websocket close, no disconnect written
        proc.wait(10)
        killed = datetime.now(UTC)
        await console.until(lambda: (s := console.seat(SITE)) and s["online"] == 0, within=10)
        assert console.seat(SITE)["status"] == "present_online"  # was present; now offline: the gap shows

        (interval,) = await _intervals(b, mid, SITE)
        assert interval.left_at is not None, "the site's attendance interval is closed"
        # closed as of A's last sign of life, not when B noticed (≥ 2 s later)
        assert interval.left_at <= killed.replace(tzinfo=interval.left_at.tzinfo), (interval.left_at, killed)
        assert await _rows(b, PresenceLease) == []
        assert {i.id for i in await _rows(b, ServerInstance)} == {b.app[INSTANCE]}
    finally:
        if proc.poll() is None:
            proc.kill()
        for ws in (console, site):
            if ws is not None:
                await ws.close()
        if site_http is not None:
            await site_http.http.close()


async def until_held(srv: LiveServer, count: int, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while sum(srv.app[PRESENCE].held.values()) != count:
        assert time.monotonic() < deadline, f"held {dict(srv.app[PRESENCE].held)}, wanted {count}"
        await asyncio.sleep(0.05)


async def test_a_process_taken_for_dead_writes_its_connections_again(server_factory: Any, db_url: str) -> None:
    srv = await server_factory(db_url)
    chair = await srv.login("chutri")
    site_http = await srv.login("vinhyen")
    mid = await schedule(chair)
    await set_state(chair, mid, "rehearsal", "live")
    site = await WsClient.open(site_http)
    screen = await WsClient.open(site_http)  # the site's second screen
    console = await WsClient.open(chair)
    try:
        await site.request({"type": "join", "meeting": mid})
        await screen.request({"type": "join", "meeting": mid})
        await console.request({"type": "subscribe", "topic": f"rollcall:{mid}:BCA"})
        assert console.seat(SITE)["online"] == 2
        assert sum(srv.app[PRESENCE].held.values()) == 2

        # Another process took this one for dead (it could not reach the database for too long)
        # and released its connections.
        async with transaction(srv.app[DB]) as db:
            await db.execute(ServerInstance.__table__.update().values(seen_at=datetime(2000, 1, 1, tzinfo=UTC)))
        assert await leases_loop._release(srv.app, srv.app[INSTANCE])
        await console.until(lambda: console.seat(SITE)["online"] == 0)
        assert await _rows(srv, PresenceLease) == []
        # Meanwhile one screen really leaves: it must not come back with the re-assert.
        await screen.close()
        await until_held(srv, 1)

        # Its next heartbeat finds its row gone: it registers again and re-asserts the connection
        # it still holds (that websocket never closed).
        assert await leases_loop.beat(srv.app) == 0
        await console.until(lambda: console.seat(SITE)["online"] == 1)
        (lease,) = await _rows(srv, PresenceLease)
        assert lease.instance_id == srv.app[INSTANCE] and lease.count == 1
        assert len(await _intervals(srv, mid, SITE)) == 2  # the gap is on record

        second = await WsClient.open(site_http)
        await second.request({"type": "join", "meeting": mid})
        await console.until(lambda: console.seat(SITE)["online"] == 2)
        assert [lease.count for lease in await _rows(srv, PresenceLease)] == [2]
        await site.close()
        await console.until(lambda: console.seat(SITE)["online"] == 1)
        assert [lease.count for lease in await _rows(srv, PresenceLease)] == [1]
        await second.close()
        await console.until(lambda: console.seat(SITE)["online"] == 0)
        assert await _rows(srv, PresenceLease) == []
    finally:
        for ws in (site, screen, console):
            await ws.close()


async def test_a_stopped_server_process_writes_its_sites_offline_and_leaves(server_factory: Any, db_url: str,
                                                                           tmp_path: Path) -> None:
    """SIGTERM (a deployment restarting the service): the process closes its websockets first,
    writes its sites' disconnects, and removes its own row — nothing is left for a sweep."""
    b = await server_factory(db_url, clock=WallClock(), **FAST)
    proc, url_a = await _spawn(db_url, tmp_path)
    chair = await b.login("chutri")
    site_http = None
    try:
        mid = await schedule(chair)
        await set_state(chair, mid, "rehearsal", "live")
        site_http = await LiveServer(url_a, None, None, None).login("vinhyen", PASSWORD)  # type: ignore[arg-type]
        site = await WsClient.open(site_http)
        await site.request({"type": "join", "meeting": mid})
        assert len(await _rows(b, PresenceLease)) == 1

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 60) == 0
        await asyncio.wait_for(site.task, 5)  # the site's socket ended…
        assert site.ws.close_code == 1001, site.ws.close_code  # …told "going away" (it reconnects elsewhere)
        (interval,) = await _intervals(b, mid, SITE)
        assert interval.left_at is not None
        assert await _rows(b, PresenceLease) == []
        assert {i.id for i in await _rows(b, ServerInstance)} == {b.app[INSTANCE]}
        await site.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        if site_http is not None:
            await site_http.http.close()
