"""Helpers for the media browser tests: bridges as real subprocesses (``python -m bridge``) on
ports chosen before the server starts, a wall clock for the server (the bridges check join tokens
against real time), and what a page's player reports through ``getStats()``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from playwright.async_api import Page

from server.auth import issue_machine_token
from server.db import transaction
from server.state import DB
from sessions.passwords import hash_password
from sessions.store import units as units_store
from sessions.store import users as users_store
from tests.conftest import PASSWORD, FakeClock, LiveServer

ROOT = Path(__file__).resolve().parent.parent


class WallClock(FakeClock):
    """The server's clock is real time here: join tokens are checked by the bridges against their
    own clocks, and the roll call's attendance intervals must show a real gap."""

    def __call__(self) -> datetime:
        return datetime.now(UTC)


async def bridge_token(srv: LiveServer, code: str) -> str:
    async with transaction(srv.app[DB]) as db:
        unit = await units_store.get_by_code(db, code)
        _tid, token = await issue_machine_token(srv.app, db, name=f"bridge-{code}", unit_id=unit.id,
                                                scopes=frozenset({"bridge"}), days=1, created_by_id=None)
    return token


async def add_site_operator(srv: LiveServer, username: str, code: str) -> None:
    async with transaction(srv.app[DB]) as db:
        unit = await units_store.get_by_code(db, code)
        await users_store.create_user(db, username=username, full_name=username,
                                      password_hash=hash_password(PASSWORD), unit_id=unit.id, role="site_operator")


@dataclass
class Bridge:
    """One ``python -m bridge`` process; its output goes to ``log``."""

    unit: str
    port: int
    server_url: str
    token: str
    key: bytes
    log: Path
    upstream: str = ""
    proc: asyncio.subprocess.Process | None = None
    lines: list[str] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, within: float = 30.0) -> None:
        args = [sys.executable, "-m", "bridge", "--unit", self.unit, "--server", self.server_url,
                "--listen", f"127.0.0.1:{self.port}", "--token", self.token]
        if self.upstream:
            args += ["--upstream", self.upstream]
        env = {**os.environ, "HOINGHI_BRIDGE_KEY": self.key.decode()}
        self.proc = await asyncio.create_subprocess_exec(*args, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
                                                         stderr=asyncio.subprocess.STDOUT)
        ready = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(self.proc, ready))
        try:
            await asyncio.wait_for(asyncio.shield(ready), within)
        except TimeoutError:
            raise AssertionError(f"bridge {self.unit} did not start:\n" + "".join(self.lines[-30:])) from None

    async def _read(self, proc: asyncio.subprocess.Process, ready: asyncio.Future[None]) -> None:
        assert proc.stdout is not None
        with self.log.open("a") as out:
            while line := (await proc.stdout.readline()).decode(errors="replace"):
                self.lines.append(line)
                out.write(line)
                out.flush()
                if "nhận WHIP/WHEP tại" in line and not ready.done():
                    ready.set_result(None)
        if not ready.done():
            ready.set_exception(AssertionError(f"bridge {self.unit} exited: " + "".join(self.lines[-30:])))

    async def kill(self) -> None:
        """As a crash would: SIGKILL, nothing said to anyone."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        await self._drain()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await self._drain()

    async def _drain(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)
            self._reader = None


# What a page's programme player receives: the video's decoded frames and size, audio packets.
PLAYER_STATS = """async () => {
  const pc = window.__media?.player?.pc;
  if (!pc || pc.connectionState === "closed") return null;
  const out = {state: pc.connectionState, frames: 0, width: 0, height: 0, audio: 0};
  (await pc.getStats()).forEach((s) => {
    if (s.type !== "inbound-rtp") return;
    if (s.kind === "video") {
      out.frames += s.framesDecoded || 0;
      if (s.frameWidth) { out.width = s.frameWidth; out.height = s.frameHeight; }
    } else if (s.kind === "audio") out.audio += s.packetsReceived || 0;
  });
  return out;
}"""

# Every camera in these tests holds its resolution under load (a crowded 2-core machine would
# otherwise let Chromium scale the picture down, and the sizes are how the tests tell sources apart);
# ``size`` makes this browser context's camera capture at that size.
# It also marks the tab as having passed the site page's camera/microphone check (#14, web/static/
# prejoin.js): these tests are about what is sent and heard once a site has joined.
CAMERA_SCRIPT = """(() => {
  const checked = '{"video":null,"audio":null,"cameraLabel":"","micLabel":""}';
  try { sessionStorage.setItem("hoinghi.prejoin", checked); } catch {}
  const size = %s;
  const md = navigator.mediaDevices;
  if (!md) return;
  const original = md.getUserMedia.bind(md);
  md.getUserMedia = async (constraints) => {
    if (size && constraints && constraints.video) {
      constraints = {...constraints, video: {width: {exact: size[0]}, height: {exact: size[1]}}};
    }
    const stream = await original(constraints);
    for (const t of stream.getVideoTracks()) t.contentHint = "detail";
    return stream;
  };
})();"""


def camera_script(size: tuple[int, int] | None = None) -> str:
    return CAMERA_SCRIPT % (f"[{size[0]}, {size[1]}]" if size else "null")


async def player_stats(page: Page) -> dict[str, Any] | None:
    result: dict[str, Any] | None = await page.evaluate(PLAYER_STATS)
    return result


Size = tuple[int, int]


def _fits(last: dict[str, Any], size: Size | tuple[Size, ...]) -> bool:
    """The latest frame is ``size`` — or one of several (a camera's two renditions, issue #16)."""
    sizes = size if isinstance(size[0], tuple) else (size,)
    return (last["width"], last["height"]) in sizes


async def shows(page: Page, size: Size | tuple[Size, ...], within: float, what: str = "") -> dict[str, Any]:
    """Wait until the page's player has decoded a frame of ``size`` (its latest frame)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        last = await player_stats(page)
        if last is not None and last["frames"] > 0 and _fits(last, size):
            return last
        if loop.time() > deadline:
            raise AssertionError(f"{what or page.url}: no frame at {size} within {within} s; last stats {last}")
        await asyncio.sleep(0.05)


async def plays(page: Page, size: Size | tuple[Size, ...], within: float, frames: int = 10, what: str = "",
                audio: bool = True) -> dict[str, Any]:
    """Wait until the page's player decodes ``frames`` more video frames at ``size`` and (with
    ``audio``) receives more audio packets; returns the last stats. Fails with what was seen after
    ``within`` s. The chair's own player gets no audio while nobody holds the floor (no echo: the
    bridge withholds the chair's voice from the chair): ``audio=False`` there."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    first: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    while True:
        last = await player_stats(page)
        if last is not None and _fits(last, size):
            if first is None or last["frames"] < first["frames"]:
                first = last  # from the first frame at this size (a new connection starts at 0)
            elif last["frames"] - first["frames"] >= frames and (not audio or last["audio"] > first["audio"]):
                return last
        else:
            first = None
        if loop.time() > deadline:
            raise AssertionError(f"{what or page.url}: no video at {size} within {within} s; last stats {last}")
        await asyncio.sleep(0.1)
