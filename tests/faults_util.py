"""Dependencies a test may break: its own PostgreSQL (``initdb`` into a temporary folder, a free
port, trust authentication, ``pg_ctl`` of the installed PostgreSQL) and its own ``redis-server``
(a free port, nothing saved), each with ``stop()``, ``start()`` and ``restart()``, so fault tests
take them down and bring them back without touching the database or Redis the rest of the suite
uses. Missing binaries skip locally with the reason and fail under CI=true (``need_service``).

As root, PostgreSQL (which refuses to run as root) runs as the ``postgres`` user through
``runuser``; its folder is made under /tmp and handed to that user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need_service
from tests.live_util import free_port

START_SECONDS = 60


def _postgres_bin() -> Path | None:
    for pg_ctl in sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True):  # newest first
        if (pg_ctl.parent / "initdb").exists():
            return pg_ctl.parent
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and shutil.which("initdb") else None


class PrivatePostgres:
    """One PostgreSQL cluster of a test module's own: ``url`` reaches its ``postgres`` database."""

    def __init__(self, bindir: Path, root: Path, port: int, as_user: str | None) -> None:
        self.bindir, self.root, self.port, self.as_user = bindir, root, port, as_user
        self.data = root / "data"
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        prefix = ["runuser", "-u", self.as_user, "--"] if self.as_user else []
        done = subprocess.run([*prefix, str(self.bindir / tool), *args], capture_output=True, text=True,
                              timeout=START_SECONDS, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({done.returncode}): {done.stdout}{done.stderr}"
                               f"{self._log_tail()}")

    def _log_tail(self) -> str:
        log = self.root / "postgres.log"
        return "\n" + log.read_text(errors="replace")[-2000:] if log.exists() else ""

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C",
                  "--no-sync")

    def start(self) -> None:
        """Start (a no-op when running) and wait until it accepts connections."""
        if self.running():
            return
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "postgres.log"), "-o", options, "-w",
                  "-t", str(START_SECONDS), "start")

    def stop(self) -> None:
        """A fast shutdown: open connections are ended, as when the server goes away."""
        if self.running():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", str(START_SECONDS), "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


class PrivateRedis:
    """One ``redis-server`` of a test module's own: ``url`` reaches it; nothing is ever saved."""

    def __init__(self, binary: str, root: Path, port: int) -> None:
        self.binary, self.root, self.port = binary, root, port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start (a no-op when running) and wait until it answers PING."""
        if self.proc is not None and self.proc.poll() is None:
            return
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.root), "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_SECONDS
        while not self._answers():
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer PING")
            time.sleep(0.05)

    def _answers(self) -> bool:
        import socket

        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
        return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(START_SECONDS)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def _postgres_user() -> str | None:
    """Who runs PostgreSQL: ourselves, or ``postgres`` when we are root (it will not run as root)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        need_service("running as root, PostgreSQL needs a 'postgres' user to run as")
    if shutil.which("runuser") is None:
        need_service("running as root, PostgreSQL is started through 'runuser', which is missing")
    return "postgres"


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL of this module's own, running; stopped and deleted at the end."""
    bindir = _postgres_bin()
    if bindir is None:
        need_service("PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin "
                     "(apt install postgresql)")
    assert bindir is not None
    user = _postgres_user()
    root = Path(tempfile.mkdtemp(prefix="hoinghi-pg-"))
    if user:
        shutil.chown(root, user, user)
    pg = PrivatePostgres(bindir, root, free_port(), user)
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        with contextlib.suppress(Exception):
            pg.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def private_redis() -> Iterator[PrivateRedis]:
    """A redis-server of this module's own, running; stopped at the end."""
    binary = shutil.which("redis-server")
    if binary is None:
        need_service("redis-server not found on PATH (apt install redis-server)")
    assert binary is not None
    root = Path(tempfile.mkdtemp(prefix="hoinghi-redis-"))
    rd = PrivateRedis(binary, root, free_port())
    try:
        rd.start()
        yield rd
    finally:
        rd.stop()
        shutil.rmtree(root, ignore_errors=True)
