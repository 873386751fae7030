"""Shared fixtures: a real database (SQLite, and PostgreSQL when HOINGHI_TEST_POSTGRES_URL is set),
a real aiohttp server on 127.0.0.1 port 0, and logged-in HTTP clients.

Services the machine lacks make their tests skip locally with the reason; with CI=true the
same condition fails instead, so CI can never pass by skipping.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy.ext.asyncio import AsyncSession

from server import db as dbmod
from server.app import create_app
from server.settings import Settings, load_settings
from server.state import DB
from sessions.passwords import hash_password
from sessions.store import units as units_store
from sessions.store import users as users_store
from sessions.units import Level, UnitRow

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_URL = os.environ.get("HOINGHI_TEST_POSTGRES_URL", "")


# Tests that carry real media at rate — Chromium pages with cameras and microphones, bridges
# cascading real peers, links shaped between network namespaces — stand for a dozen machines on
# one. Two of them at once on CI's two cores starved each other (a page's encoders, a bridge's event
# loop: a floor holder heard 6 s late, a picture that came in 11 s), a different test failing in
# each run. With `--dist loadfile` (`make test`) their modules count as one file: they run one after
# another on one worker, first, while the other worker takes the rest of the suite.
MEDIA_AT_RATE = frozenset({
    "test_audio", "test_audio_browser", "test_cascade", "test_codec_browser", "test_codec_cascade",
    "test_content_cascade", "test_gstreamer", "test_media_browser", "test_mosaic_browser",
    "test_netns_link", "test_province_console_browser", "test_recording_bridge", "test_recording_browser",
    "test_recording_h264", "test_recording_province", "test_renditions", "test_renditions_cascade",
    "test_share_browser", "test_stalls", "test_weak_link",
})
MEDIA_SCOPE = "tests/<media at rate>"


def _scope(nodeid: str) -> str:
    module = nodeid.split("::", 1)[0]
    return MEDIA_SCOPE if Path(module).stem in MEDIA_AT_RATE else module


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile` with the media modules as one file (xdist_group markers would do, but
    pytest 9 ignores the test ids xdist 3.8 rewrites for them)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class MediaApart(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _scope(nodeid)

    return MediaApart(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The media modules first (the longest unit of work: it starts at once on one worker), then
    the other modules by their number of tests, most first (xdist's own order; `make test` runs
    `--no-loadscope-reorder`, which would otherwise put the largest module first)."""
    scopes = {item.nodeid: _scope(item.nodeid) for item in items}
    sizes = Counter(scopes.values())
    items.sort(key=lambda item: (scopes[item.nodeid] != MEDIA_SCOPE, -sizes[scopes[item.nodeid]]))


NAMESPACE_MODULES = frozenset({"test_weak_link", "test_netns_link"})  # the tests that make weak links


@pytest.fixture(autouse=True)
def off_weak_link_addresses(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A weak-link test gives this machine a veth address (tests/netns_util) for its duration. A WebRTC
    peer of a test running meanwhile on the other xdist worker would gather it as a host candidate,
    could pair over it, and would lose all media when that veth goes (a full run here saw a player
    get nothing for 10 s). Outside the weak-link modules, this process's peers do not gather it."""
    if Path(str(request.node.path)).stem in NAMESPACE_MODULES:
        return
    import aioice.ice

    from tests.netns_util import ADDRESS_PREFIX

    gather = aioice.ice.get_host_addresses
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: [
        address for address in gather(use_ipv4, use_ipv6) if not address.startswith(ADDRESS_PREFIX)])


@pytest.fixture(autouse=True)
def machine_share(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A test marked ``solo`` (four Chromium pages and three bridges, or a link shaped for a
    browser: what CPU starvation alone made fail) has the machine to itself: it holds a file
    lock exclusively, every other test shares it, across the xdist workers of one run. A waiting
    solo test goes first: a turnstile stops other tests from taking their share meanwhile."""
    if not hasattr(request.config, "workerinput"):  # one process: nothing else runs meanwhile
        yield
        return
    root = tmp_path_factory.getbasetemp().parent  # shared by the run's workers
    solo = request.node.get_closest_marker("solo") is not None
    with open(root / "machine.turnstile", "a") as turnstile, open(root / "machine.lock", "a") as lock:
        fcntl.flock(turnstile, fcntl.LOCK_EX if solo else fcntl.LOCK_SH)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if solo else fcntl.LOCK_SH)
        finally:
            if not solo:
                fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            if solo:
                fcntl.flock(turnstile, fcntl.LOCK_UN)


def need_service(reason: str) -> None:
    """Skip locally, fail in CI: a missing service never turns into a green run there."""
    if IN_CI:
        pytest.fail(f"CI requires this service: {reason}")
    pytest.skip(reason)


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _admin(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_dsn(PG_URL), timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _run_in_thread(statement: str) -> None:
    """Run an admin statement on its own loop in a worker thread (callable from inside a loop)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _admin(statement)).result()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | BaseException]:
    """A private database for this test process (made next to HOINGHI_TEST_POSTGRES_URL's), so
    concurrent runs never trample each other; dropped at the end."""
    if not PG_URL:
        yield RuntimeError("not configured: set HOINGHI_TEST_POSTGRES_URL=postgresql+asyncpg://…")
        return
    name = f"hoinghi_test_{os.getpid()}"
    try:
        _run_in_thread(f'DROP DATABASE IF EXISTS "{name}"')
        _run_in_thread(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # unreachable server, bad credentials: reported by the tests that need it
        yield exc
        return
    yield f"{PG_URL.rsplit('/', 1)[0]}/{name}"
    _run_in_thread(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _reset_postgres(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_dsn(url), timeout=5)
    try:
        await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every storage test runs on SQLite, and on PostgreSQL when configured (required in CI)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.sqlite3'}"
    pg = request.getfixturevalue("pg_database")
    if isinstance(pg, BaseException):
        need_service(f"PostgreSQL unavailable: {type(pg).__name__}: {pg}")
    assert isinstance(pg, str)
    await _reset_postgres(pg)
    return pg


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    """For tests that are about behaviour above storage: SQLite only (fast)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'test.sqlite3'}"


@pytest.fixture
async def session_factory(db_url: str) -> AsyncIterator[Any]:
    await dbmod.upgrade(db_url)
    engine = dbmod.make_engine(db_url)
    yield dbmod.sessionmaker(engine)
    await engine.dispose()


class FakeClock:
    """The injected clock: tests move time forward explicitly."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


# A small real-shaped tree: the ministry, two provinces of the current tree, one of which has a
# district (legacy-style) to exercise three tiers, and a few communes.
TREE = [
    UnitRow("BCA", "Bộ Công an", Level.CENTRAL, None),
    UnitRow("01", "Thành phố Hà Nội", Level.PROVINCE, "BCA"),
    UnitRow("00070", "Phường Hoàn Kiếm", Level.COMMUNE, "01"),
    UnitRow("00004", "Phường Ba Đình", Level.COMMUNE, "01"),
    UnitRow("25", "Phú Thọ", Level.PROVINCE, "BCA"),
    UnitRow("08707", "Phường Vĩnh Yên", Level.COMMUNE, "25"),
    UnitRow("08740", "Phường Phúc Yên", Level.COMMUNE, "25"),
    UnitRow("79", "Thành phố Hồ Chí Minh", Level.PROVINCE, "BCA"),
    UnitRow("760", "Quận 1 (cũ)", Level.DISTRICT, "79"),
    UnitRow("26734", "Phường Sài Gòn", Level.COMMUNE, "760"),
]
PASSWORD = "mat-khau-thu-nghiem"
# username → (role, unit code)
ACCOUNTS = {
    "quantri": ("admin", "BCA"),
    "chutri": ("chair", "BCA"),
    "hanoi": ("bridge_operator", "01"),
    "qt_hanoi": ("admin", "01"),
    "phutho": ("bridge_operator", "25"),
    "vinhyen": ("site_operator", "08707"),
    "hoankiem": ("site_operator", "00070"),
    "xem_hanoi": ("viewer", "01"),
}
_HASH = hash_password(PASSWORD)


async def seed(db: AsyncSession) -> None:
    await units_store.import_units(db, list(TREE))
    for username, (role, code) in ACCOUNTS.items():
        unit = await units_store.get_by_code(db, code)
        await users_store.create_user(db, username=username, full_name=username, password_hash=_HASH,
                                      unit_id=unit.id, role=role)


@dataclass
class LiveServer:
    """A real hoinghi server on 127.0.0.1:<random port>."""

    url: str
    app: Any
    clock: FakeClock
    settings: Settings
    sessions: list[aiohttp.ClientSession] = field(default_factory=list)

    def client(self) -> aiohttp.ClientSession:
        # A browser names the page's origin on every websocket handshake (and the site refuses a
        # cookie handshake without one): the same origin, as the site's own pages.
        s = aiohttp.ClientSession(base_url=self.url, cookie_jar=aiohttp.CookieJar(unsafe=True),
                                  headers={"Origin": self.url})
        self.sessions.append(s)
        return s

    async def login(self, username: str, password: str = PASSWORD) -> Client:
        http = self.client()
        page = await (await http.get("/login")).text()
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token, "login form has a CSRF token"
        resp = await http.post("/login", data={"username": username, "password": password,
                                               "csrf_token": token.group(1), "next": "/"},
                               allow_redirects=False)
        assert resp.status == 303, f"login {username}: {resp.status} {await resp.text()}"
        home = await (await http.get("/")).text()
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', home)
        assert csrf
        return Client(http, csrf.group(1), username)


@dataclass
class Client:
    http: aiohttp.ClientSession
    csrf: str
    username: str

    async def get(self, path: str, **kw: Any) -> aiohttp.ClientResponse:
        return await self.http.get(path, allow_redirects=False, **kw)

    async def post_form(self, path: str, data: dict[str, Any] | None = None, **kw: Any) -> aiohttp.ClientResponse:
        return await self.http.post(path, data={**(data or {}), "csrf_token": self.csrf}, allow_redirects=False, **kw)

    async def api(self, method: str, path: str, json: Any = None, **kw: Any) -> aiohttp.ClientResponse:
        headers = {"X-CSRF-Token": self.csrf, **kw.pop("headers", {})}
        return await self.http.request(method, path, json=json, headers=headers, allow_redirects=False, **kw)


def make_settings(tmp_path: Path, url: str, **overrides: Any) -> Settings:
    return load_settings(environ={}, database_url=url, var_dir=str(tmp_path / "var"), log_format="text",
                         secret_key="test-secret-key-not-for-production", **overrides)


async def start_server(tmp_path: Path, url: str, clock: FakeClock | None = None,
                       **overrides: Any) -> tuple[LiveServer, TestServer]:
    settings = make_settings(tmp_path, url, **overrides)
    clock = clock or FakeClock()
    app = create_app(settings, clock=clock)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    async with dbmod.transaction(app[DB]) as session:
        await seed(session)
    return LiveServer(str(server.make_url("")).rstrip("/"), app, clock, settings), server


@pytest.fixture
async def live(tmp_path: Path, db_url: str) -> AsyncIterator[LiveServer]:
    """The real server on both databases (SQLite; PostgreSQL when configured)."""
    srv, server = await start_server(tmp_path, db_url)
    yield srv
    for s in srv.sessions:
        await s.close()
    await server.close()


@pytest.fixture
async def live_sqlite(tmp_path: Path, sqlite_url: str) -> AsyncIterator[LiveServer]:
    srv, server = await start_server(tmp_path, sqlite_url)
    yield srv
    for s in srv.sessions:
        await s.close()
    await server.close()


@pytest.fixture
async def server_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Start servers with custom settings or clocks; all closed at teardown."""
    started: list[tuple[LiveServer, TestServer]] = []

    async def factory(url: str, clock: FakeClock | None = None, **overrides: Any) -> LiveServer:
        pair = await start_server(tmp_path, url, clock, **overrides)
        started.append(pair)
        return pair[0]

    yield factory
    for srv, server in started:
        for s in srv.sessions:
            await s.close()
        await server.close()


MEDIA_BRIDGE = "HN"


@pytest.fixture
async def bridge() -> AsyncIterator[tuple[str, Any]]:
    """A media bridge of unit ``MEDIA_BRIDGE`` in this process: (base URL, its BridgeState)."""
    from bridge.app import STATE
    from bridge.app import create_app as create_bridge_app
    from bridge.room import BridgeConfig
    from tests.media_util import KEY

    server = TestServer(create_bridge_app(BridgeConfig(unit=MEDIA_BRIDGE, key=KEY)), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), server.app[STATE]
    finally:
        await server.close()


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Every async test ends with no task of ours still running: servers, bridges, sockets and
    peers it started are stopped and their background tasks cancelled and awaited (set up first,
    so this runs after every other fixture of the test has been torn down). Only tasks running the
    project's own code count: aiortc's and aioice's internals may outlive a peer connection closed
    mid-handshake for a while and end by themselves."""
    before = set(asyncio.all_tasks())
    yield
    current = asyncio.current_task()
    for _ in range(50):  # tasks that are finishing their cancellation get a moment
        leaked = [t for t in asyncio.all_tasks() if t not in before and t is not current and not t.done()
                  and _ours(t)]
        if not leaked:
            return
        await asyncio.sleep(0.02)
    names = sorted({f"{t.get_name()} ({t.get_coro()!r})"[:160] for t in leaked})
    pytest.fail(f"{len(leaked)} task(s) left running after the test: " + "; ".join(names[:8]))


ROOT = Path(__file__).resolve().parent.parent
OUR_CODE = tuple(str(ROOT / part) for part in ("server", "sessions", "bridge", "demo", "tests"))


def _ours(task: asyncio.Task[Any]) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    return getattr(code, "co_filename", "").startswith(OUR_CODE)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Any]:
    """A redis-server of this test's own (tests.faults_util.PrivateRedis), which the test may stop
    and start without disturbing the rest of the suite."""
    import shutil

    from tests.faults_util import PrivateRedis
    from tests.live_util import free_port

    binary = shutil.which("redis-server")
    if binary is None:
        need_service("redis-server not found on PATH (apt install redis-server)")
    assert binary is not None
    rd = PrivateRedis(binary, tmp_path, free_port())
    rd.start()
    try:
        yield rd
    finally:
        rd.stop()
