"""Two real server processes on one PostgreSQL and one Redis behave as one: a hand raised
through process A appears at once on a console connected to process B, and the floor granted
through B reaches the site on A."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.conftest import Client, LiveServer, need_service
from tests.deployment import postgres_url, prepare, server_processes
from tests.live_util import WsClient, schedule, set_state

REDIS_URL = os.environ.get("HOINGHI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parent.parent


async def _redis_ok() -> None:
    from redis.asyncio import Redis

    r = Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await r.ping()
    except Exception as exc:
        need_service(f"Redis unreachable at {REDIS_URL} ({type(exc).__name__}); set HOINGHI_TEST_REDIS_URL")
    finally:
        await r.aclose()


@pytest.fixture
def pg_url(pg_database: str | BaseException) -> Iterator[str]:
    yield postgres_url(pg_database)


@pytest.fixture
async def two_servers(tmp_path: Path, pg_url: str) -> AsyncIterator[tuple[str, str]]:
    await _redis_ok()
    users = [("chutri", "BCA", "chair"), ("vinhyen", "08707", "site_operator")]
    env = await prepare(tmp_path, pg_url, REDIS_URL, users, "mat-khau-thu-nghiem",
                        bus_channel_prefix=f"test-{uuid.uuid4().hex[:8]}")
    async with server_processes(env) as spawn:
        (url_a, _), (url_b, _) = await spawn(), await spawn()
        yield url_a, url_b


async def _login(url: str, username: str) -> Client:
    # LiveServer.login only needs a base URL; the app/settings fields are unused here.
    srv = LiveServer(url, None, None, None)  # type: ignore[arg-type]
    return await srv.login(username)


async def test_hand_raised_on_a_reaches_console_on_b(two_servers: tuple[str, str]) -> None:
    url_a, url_b = two_servers
    chair = await _login(url_b, "chutri")
    site_http = await _login(url_a, "vinhyen")
    try:
        mid = await schedule(chair)
        await set_state(chair, mid, "rehearsal", "live")
        console = await WsClient.open(chair)  # on B
        await console.request({"type": "subscribe", "topic": f"rollcall:{mid}:BCA"})
        await console.request({"type": "subscribe", "topic": f"meeting:{mid}"})
        site = await WsClient.open(site_http)  # on A
        await site.request({"type": "subscribe", "topic": f"meeting:{mid}"})
        await site.request({"type": "join", "meeting": mid})
        await console.until(lambda: (s := console.seat("08707")) and s["online"] == 1, within=5)

        await site.request({"type": "action", "meeting": mid, "action": "raise_hand"})
        seat = await console.until(lambda: (s := console.seat("08707")) and s["hand_at"] and s, within=2)
        assert seat["status"] == "present_online"

        await console.request({"type": "action", "meeting": mid, "action": "grant", "unit": "08707"})
        await site.until(lambda: site.meeting and site.meeting["floor"] and site.meeting["floor"]["code"] == "08707",
                         within=2)
        await site.close()
        await console.close()
    finally:
        await chair.http.close()
        await site_http.http.close()
