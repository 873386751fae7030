"""Two real server processes on one PostgreSQL and one Redis behave as one: a hand raised
through process A appears at once on a console connected to process B, and the floor granted
through B reaches the site on A."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.conftest import TREE, Client, LiveServer, need_service
from tests.live_util import WsClient, free_port, schedule, set_state, spawn_server, wait_healthy

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


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    proc = subprocess.run([sys.executable, "-m", "server.cli", *args], env=env, input=stdin, text=True,
                          capture_output=True, cwd=ROOT, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
def pg_url(pg_database: str | BaseException) -> Iterator[str]:
    if isinstance(pg_database, BaseException):
        need_service(f"PostgreSQL unavailable: {pg_database}")
    assert isinstance(pg_database, str)
    yield pg_database


@pytest.fixture
async def two_servers(tmp_path: Path, pg_url: str) -> AsyncIterator[tuple[str, str]]:
    from tests.conftest import _reset_postgres

    await _redis_ok()
    await _reset_postgres(pg_url)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HOINGHI_")},
           "HOINGHI_DATABASE_URL": pg_url, "HOINGHI_SECRET_KEY": "shared-secret-for-both-processes",
           "HOINGHI_BUS_URL": REDIS_URL, "HOINGHI_BUS_CHANNEL_PREFIX": f"test-{uuid.uuid4().hex[:8]}",
           "HOINGHI_VAR_DIR": str(tmp_path / "var"), "HOINGHI_LOG_LEVEL": "WARNING"}
    csv_path = tmp_path / "tree.csv"
    csv_path.write_text("code,name,level,parent_code\n" + "".join(
        f"{u.code},{u.name},{u.level.value},{u.parent_code or ''}\n" for u in TREE), encoding="utf-8")
    _cli(env, "units", "import", "--source", "csv", "--file", str(csv_path))
    _cli(env, "users", "add", "--username", "chutri", "--unit", "BCA", "--role", "chair", "--password-stdin",
         stdin="mat-khau-thu-nghiem\n")
    _cli(env, "users", "add", "--username", "vinhyen", "--unit", "08707", "--role", "site_operator",
         "--password-stdin", stdin="mat-khau-thu-nghiem\n")
    procs, urls = [], []
    try:
        for _ in range(2):
            port = free_port()
            proc = spawn_server(env, port)
            procs.append(proc)
            urls.append(f"http://127.0.0.1:{port}")
            await wait_healthy(urls[-1], proc)
        yield urls[0], urls[1]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


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
