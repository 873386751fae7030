"""A deployment of a test's own: real ``hoinghi serve`` processes on one PostgreSQL database and
one Redis, as several server processes run in production. Shared by the tests that need more
than one process (tests/test_multiprocess.py, test_ws_revocation.py, test_resync_redis.py,
test_outbox_redis.py)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path

from tests.conftest import TREE, _reset_postgres, need_service
from tests.live_util import free_port, spawn_server, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
Spawn = Callable[[], Awaitable[tuple[str, "subprocess.Popen[str]"]]]


def run_cli(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    """``hoinghi <args>`` in a process of its own, with the deployment's environment."""
    proc = subprocess.run([sys.executable, "-m", "server.cli", *args], env=env, input=stdin, text=True,
                          capture_output=True, cwd=ROOT, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr


async def prepare(tmp_path: Path, db_url: str, bus_url: str, users: Iterable[tuple[str, str, str]],
                  password: str, **settings: str) -> dict[str, str]:
    """An empty database with the test tree and ``users`` (username, unit code, role) added by the
    command line; returns the environment every process of the deployment runs with."""
    await _reset_postgres(db_url)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HOINGHI_")},
           "HOINGHI_DATABASE_URL": db_url, "HOINGHI_SECRET_KEY": "shared-secret-for-both-processes",
           "HOINGHI_BUS_URL": bus_url, "HOINGHI_VAR_DIR": str(tmp_path / "var"), "HOINGHI_LOG_LEVEL": "WARNING",
           **{f"HOINGHI_{k.upper()}": v for k, v in settings.items()}}
    csv_path = tmp_path / "tree.csv"
    csv_path.write_text("code,name,level,parent_code\n" + "".join(
        f"{u.code},{u.name},{u.level.value},{u.parent_code or ''}\n" for u in TREE), encoding="utf-8")
    run_cli(env, "units", "import", "--source", "csv", "--file", str(csv_path))
    for username, unit, role in users:
        run_cli(env, "users", "add", "--username", username, "--unit", unit, "--role", role, "--password-stdin",
                stdin=password + "\n")
    return env


@contextlib.asynccontextmanager
async def server_processes(env: dict[str, str]) -> AsyncIterator[Spawn]:
    """``spawn()`` starts one more server process and returns (its URL, the process) once healthy; every process
    still running is stopped (terminated, killed if it hangs) when the context ends."""
    procs: list[subprocess.Popen[str]] = []

    async def spawn() -> tuple[str, subprocess.Popen[str]]:
        port = free_port()
        procs.append(spawn_server(env, port))
        url = f"http://127.0.0.1:{port}"
        await wait_healthy(url, procs[-1])
        return url, procs[-1]

    try:
        yield spawn
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def postgres_url(pg_database: str | BaseException) -> str:
    """The private test database, or skip (locally) / fail (in CI) without PostgreSQL."""
    if isinstance(pg_database, BaseException):
        need_service(f"PostgreSQL unavailable: {pg_database}")
    assert isinstance(pg_database, str)
    return pg_database
