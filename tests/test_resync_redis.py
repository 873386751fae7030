"""A Redis restart costs the consoles nothing but a moment: each server process's bus notices its
subscription came back and gives every client a fresh snapshot, so a floor granted while Redis
was down (committed, its event lost) shows on every console of both processes. Redis here is a
``redis-server`` of the test's own (tests/faults_util.PrivateRedis), stopped and started again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from server.live.bus import RESUMED, RedisBus
from tests.conftest import Client, LiveServer
from tests.deployment import postgres_url, prepare, server_processes
from tests.faults_util import PrivateRedis
from tests.live_util import WsClient, schedule, set_state

ROOT = Path(__file__).resolve().parent.parent


async def test_bus_says_when_its_subscription_is_back(own_redis: PrivateRedis) -> None:
    bus = RedisBus(own_redis.url, prefix=f"t{uuid.uuid4().hex[:6]}")
    got: list[tuple[str, bytes]] = []
    arrived = asyncio.Event()

    async def handler(topic: str, message: bytes) -> None:
        got.append((topic, message))
        arrived.set()

    async def _until(predicate: Callable[[], bool], within: float) -> None:
        async def wait() -> None:
            while not predicate():
                arrived.clear()
                await arrived.wait()
        await asyncio.wait_for(wait(), within)

    bus.subscribe("x.", handler)
    bus.subscribe(RESUMED, handler)
    await bus.start()
    try:
        await bus.publish("x.1", b"before")
        await _until(lambda: ("x.1", b"before") in got, 5)
        assert (RESUMED, b"") not in got, "the first subscription is no resume"
        own_redis.stop()
        await asyncio.sleep(0.3)  # the reader meets the closed connection
        own_redis.start()
        await _until(lambda: (RESUMED, b"") in got, 10)
        await bus.publish("x.2", b"after")  # subscribed again: what is published now arrives
        await _until(lambda: ("x.2", b"after") in got, 5)
        assert [t for t, _m in got].count(RESUMED) == 1
    finally:
        await bus.close()


@pytest.fixture
async def two_servers(tmp_path: Path, pg_database: str | BaseException,
                      own_redis: PrivateRedis) -> AsyncIterator[tuple[str, str]]:
    """Two ``hoinghi serve`` processes on one (private) PostgreSQL database and the test's Redis."""
    env = await prepare(tmp_path, postgres_url(pg_database), own_redis.url,
                        [("chutri", "BCA", "chair"), ("vinhyen", "08707", "site_operator"),
                         ("hoankiem", "00070", "site_operator")], "mat-khau-thu-nghiem")
    async with server_processes(env) as spawn:
        (url_a, _), (url_b, _) = await spawn(), await spawn()
        yield url_a, url_b


async def _login(url: str, username: str) -> Client:
    srv = LiveServer(url, None, None, None)  # type: ignore[arg-type]  # login needs only the URL
    return await srv.login(username, "mat-khau-thu-nghiem")


def _floor(client: WsClient) -> str | None:
    return ((client.meeting or {}).get("floor") or {}).get("code")


async def test_floor_granted_during_a_redis_outage_reaches_every_console(
        two_servers: tuple[str, str], own_redis: PrivateRedis) -> None:
    url_a, url_b = two_servers
    https = [await _login(url_a, "chutri"), await _login(url_b, "chutri"),
             await _login(url_a, "hoankiem"), await _login(url_b, "vinhyen")]
    chair_a, chair_b, site_a_http, site_b_http = https
    clients: list[WsClient] = []
    try:
        mid = await schedule(chair_a)
        await set_state(chair_a, mid, "rehearsal", "live")
        consoles = []
        for chair in (chair_a, chair_b):  # the chair's console open twice, once on each process
            console = await WsClient.open(chair)
            await console.request({"type": "subscribe", "topic": f"meeting:{mid}"})
            await console.request({"type": "subscribe", "topic": f"rollcall:{mid}:BCA"})
            consoles.append(console)
        sites = []
        for http in (site_a_http, site_b_http):
            site = await WsClient.open(http)
            await site.request({"type": "subscribe", "topic": f"meeting:{mid}"})
            await site.request({"type": "join", "meeting": mid})
            sites.append(site)
        clients = consoles + sites
        for console in consoles:
            for code in ("00070", "08707"):
                await console.until(lambda c=console, u=code: (s := c.seat(u)) and s["online"] == 1, within=10)

        own_redis.stop()
        resp = await chair_a.api("POST", f"/api/meetings/{mid}/floor", json={"action": "grant", "unit": "08707"})
        assert resp.status in (200, 500, 503), await resp.text()  # committed either way (issue #18)
        async with chair_b.http.get(f"/api/meetings/{mid}") as r:
            stored = await r.json()
        assert stored["live"]["meeting"]["floor"]["code"] == "08707", "the grant is committed"
        assert all(_floor(c) is None for c in clients), "its event could not be carried meanwhile"

        own_redis.start()
        for client in clients:
            await client.until(lambda c=client: _floor(c) == "08707", within=10)
        for console in consoles:
            assert any(m["type"] == "snapshot" and m.get("resync") for m in console.messages)
            seat = console.seat("08707")
            assert seat is not None and seat["online"] == 1 and seat["hand_at"] is None

        # The bus carries events again, to both processes.
        await sites[0].request({"type": "action", "meeting": mid, "action": "raise_hand"})
        for console in consoles:
            await console.until(lambda c=console: (c.seat("00070") or {}).get("hand_at"), within=5)
    finally:
        for client in clients:
            await client.close()
        for http in https:
            await http.http.close()
