"""Honest answers while PostgreSQL or Redis is away (issue #18), on a PostgreSQL and a Redis of
the test's own (tests.faults_util), stopped and started under a running server.

- PostgreSQL stopped: a KPI report and an HTTP action answer 503 ``unavailable`` with
  ``Retry-After`` (not 500); the chair's open websocket gets an ``unavailable`` error frame for an
  action and stays open (a ping is answered); ``/healthz`` says the database is down (503). Once it
  is back, everything answers again on the same server and the same socket.
- Redis stopped: KPI reports are stored and answered (the commit happened, only its event is
  lost); an action on the socket succeeds; ``/healthz`` answers 200, ``degraded``, bus down. Once
  Redis is back, events reach the console again.

Waits are functional (until a state is seen, bounded generously), never timed asserts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.control import ControlChannel
from server.state import HUB
from tests.conftest import LiveServer, _reset_postgres, start_server
from tests.faults_util import PrivatePostgres, PrivateRedis, private_postgres, private_redis  # noqa: F401
from tests.live_util import WsClient, schedule, set_state
from tests.media_browser_util import bridge_token
from tests.test_kpi_api import report_count, token
from tests.test_kpi_store import seed_reports

RECOVERY_SECONDS = 60  # generous: a loaded CI machine restarting PostgreSQL


@pytest.fixture
async def outage_server(tmp_path: Path, private_postgres: PrivatePostgres,  # noqa: F811
                        private_redis: PrivateRedis) -> AsyncIterator[LiveServer]:  # noqa: F811
    """The in-process server on the private PostgreSQL with the private Redis as its bus; both
    running again at the end, whatever the test left stopped."""
    await _reset_postgres(private_postgres.url)
    srv, server = await start_server(tmp_path, private_postgres.url, bus_url=private_redis.url)
    try:
        yield srv
    finally:
        await asyncio.to_thread(private_postgres.start)
        await asyncio.to_thread(private_redis.start)
        for s in srv.sessions:
            await s.close()
        await server.close()


async def kpi_report(srv: LiveServer, bearer: str, period: str) -> tuple[int, dict[str, Any], Any]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {bearer}"}) as http, \
            http.post(srv.url + "/api/kpi/reports", json={"reports": seed_reports(period)}) as resp:
        return resp.status, await resp.json(), resp.headers


async def health(srv: LiveServer) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(srv.url + "/healthz") as resp:
        return resp.status, await resp.json()


async def until_health(srv: LiveServer, wanted: Callable[[int, dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + RECOVERY_SECONDS
    while True:
        status, body = await health(srv)
        if wanted(status, body):
            return body
        assert time.monotonic() < deadline, f"/healthz still {status} {body}"
        await asyncio.sleep(0.2)


def unavailable(status: int, body: dict[str, Any], headers: Any) -> None:
    assert status == 503, (status, body)
    assert body["error"]["code"] == "unavailable" and "thử lại" in body["error"]["message"], body
    assert 1 <= int(headers["Retry-After"]) <= 30


async def live_meeting(srv: LiveServer) -> tuple[Any, int, WsClient]:
    chair = await srv.login("chutri")
    mid = await schedule(chair)
    await set_state(chair, mid, "rehearsal", "live")
    console = await WsClient.open(chair)
    await console.request({"type": "subscribe", "topic": f"meeting:{mid}"})
    await console.request({"type": "subscribe", "topic": f"rollcall:{mid}:BCA"})
    assert console.seat("08707") is not None
    return chair, mid, console


def mute(mid: int, on: bool) -> dict[str, Any]:
    return {"type": "action", "meeting": mid, "action": "mute" if on else "unmute", "unit": "08707"}


async def still_open(srv: LiveServer, console: WsClient) -> None:
    """The same socket answers a ping and is still the server's one connection."""
    assert (await console.request({"type": "ping"}, within=30))["type"] == "pong"
    assert not console.ws.closed and len(srv.app[HUB].connections) == 1


async def test_postgres_outage_answers_503_and_keeps_the_socket(outage_server: LiveServer,
                                                                 private_postgres: PrivatePostgres) -> None:  # noqa: F811
    srv = outage_server
    chair, mid, console = await live_meeting(srv)
    bearer = await token(srv, "BCA", frozenset({"kpi:write"}))

    await asyncio.to_thread(private_postgres.stop)
    unavailable(*await kpi_report(srv, bearer, "2022-06"))
    resp = await chair.api("POST", f"/api/meetings/{mid}/state", json={"to": "concluded"})
    unavailable(resp.status, await resp.json(), resp.headers)
    answer = await console.request(mute(mid, True), within=30)
    assert (answer["type"], answer["code"]) == ("error", "unavailable"), answer
    assert "thử lại" in answer["message"]
    await still_open(srv, console)
    status, body = await health(srv)
    assert (status, body["ok"], body["database"]) == (503, False, "down"), body

    await asyncio.to_thread(private_postgres.start)
    await until_health(srv, lambda status, body: status == 200 and body["database"] == "ok")
    status, counts, _ = await kpi_report(srv, bearer, "2022-06")
    assert status == 200 and counts["accepted"] == len(seed_reports()), counts
    assert (await console.request(mute(mid, True), within=30))["type"] == "result"
    await console.until(lambda: console.seat("08707")["muted"], within=30)
    await still_open(srv, console)
    resp = await chair.api("POST", f"/api/meetings/{mid}/state", json={"to": "concluded"})
    assert resp.status == 200, await resp.text()


async def test_redis_outage_stores_and_answers_success(outage_server: LiveServer,
                                                       private_redis: PrivateRedis) -> None:  # noqa: F811
    srv = outage_server
    _, mid, console = await live_meeting(srv)
    bearer = await token(srv, "BCA", frozenset({"kpi:write"}))

    await asyncio.to_thread(private_redis.stop)
    status, counts, _ = await kpi_report(srv, bearer, "2022-06")
    assert status == 200 and counts["accepted"] == len(seed_reports()), counts  # committed: a success
    assert await report_count(srv) == len(seed_reports())
    status, counts, _ = await kpi_report(srv, bearer, "2022-06")  # resent whole: counted once
    assert status == 200 and counts["duplicates"] == len(seed_reports()), counts
    assert (await console.request(mute(mid, True), within=30))["type"] == "result"
    await still_open(srv, console)
    status, body = await health(srv)
    assert (status, body["ok"], body["degraded"], body["database"], body["bus"]) == (200, True, True, "ok", "down")

    await asyncio.to_thread(private_redis.start)
    await until_health(srv, lambda status, body: body["bus"] == "ok" and not body["degraded"])
    # Events flow again: the seat's changes reach the console (the reader's resubscription may
    # lag the publisher's reconnection: each try is a new change, until one arrives).
    seen = console.seat("08707")["seq"]
    deadline = time.monotonic() + RECOVERY_SECONDS
    muted = True  # as stored during the outage
    while True:
        muted = not muted
        assert (await console.request(mute(mid, muted), within=30))["type"] == "result"
        try:
            await console.until(lambda want=muted: console.seat("08707")["seq"] > seen
                                and console.seat("08707")["muted"] == want, within=2)
            break
        except TimeoutError:
            assert time.monotonic() < deadline, "no event reached the console after Redis came back"
    await still_open(srv, console)


async def test_a_bridge_join_refused_during_a_postgres_outage_is_sent_again(
        outage_server: LiveServer, private_postgres: PrivatePostgres) -> None:  # noqa: F811
    """A site that starts playing at its bridge while PostgreSQL is away: the server answers the
    bridge's ``join`` with ``unavailable``; the bridge's control channel says everything current
    again once told to retry, and the roll call shows the site online after the outage."""
    srv = outage_server
    _chair, mid, console = await live_meeting(srv)
    channel = ControlChannel(srv.url, await bridge_token(srv, "25"), unit="25")
    channel.start()
    try:
        await asyncio.wait_for(channel.connected.wait(), 10)
        await channel.watch(mid)
        await asyncio.to_thread(private_postgres.stop)
        await channel.site_connected(mid, "08707")
        deadline = time.monotonic() + RECOVERY_SECONDS
        while not any(e.get("code") == "unavailable" for e in channel.errors):
            assert time.monotonic() < deadline, f"the join was not refused: {channel.errors}"
            await asyncio.sleep(0.1)
        await asyncio.to_thread(private_postgres.start)
        await console.until(lambda: (console.seat("08707") or {}).get("online") == 1, within=RECOVERY_SECONDS)
    finally:
        await channel.close()
