"""The demo's media: the central bridge (the ministry) and the bridges of the demo provinces
(Hà Nội, Phú Thọ) cascading from it, each a ``hoinghi bridge`` child process of ``hoinghi demo``,
each with its own machine token (scope ``bridge``) for the server's control channel. The server
is told where they listen through the ``bridges`` setting, so a newcomer who opens the chair
console and a site page sees and hears the programme and can hand the floor over.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from server import db
from server.services.access import mint_machine_token
from server.settings import Settings
from sessions.models import utcnow
from sessions.store import units

ROOT = Path(__file__).resolve().parent.parent
# (unit, port offset from the server's port, upstream unit)
BRIDGES = (("BCA", 101, None), ("01", 102, "BCA"), ("25", 103, "BCA"))


@dataclass
class RunningBridge:
    unit: str
    url: str
    proc: subprocess.Popen[bytes]


def _free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


async def _tokens(settings: Settings) -> dict[str, str]:
    async def work(db: AsyncSession) -> dict[str, str]:
        out: dict[str, str] = {}
        for code, _offset, _up in BRIDGES:
            unit = await units.get_by_code(db, code)
            _tid, out[code] = await mint_machine_token(
                db, key=settings.signing_key(), max_days=settings.machine_token_max_days, now=utcnow(),
                name=f"demo-bridge-{code}", unit_id=unit.id, scopes=frozenset({"bridge"}),
                days=min(7, settings.machine_token_max_days), created_by_id=None)
        return out

    return await db.run_once(settings.effective_database_url(), work)


def start(settings: Settings) -> tuple[Settings, list[RunningBridge]]:
    """Start the demo bridges; returns the settings the server must run with (``bridges`` set)
    and the running bridges (stop them with ``stop``). Nothing starts if a port is taken."""
    host = settings.host
    ports = {code: settings.port + offset for code, offset, _up in BRIDGES}
    busy = [f"{host}:{p}" for p in ports.values() if not _free(host, p)]
    if busy:
        print(f"Không khởi động cầu truyền hình mẫu: cổng {', '.join(busy)} đang bận "
              "(hội nghị vẫn chạy, không có hình/tiếng).", flush=True)
        return settings, []
    tokens = asyncio.run(_tokens(settings))
    server = f"http://{host}:{settings.port}"
    running: list[RunningBridge] = []
    for code, _offset, up in BRIDGES:
        url = f"http://{host}:{ports[code]}"
        cmd = [sys.executable, "-m", "server.cli", "bridge", "--unit", code, "--server", server,
               "--listen", f"{host}:{ports[code]}", "--token", tokens[code]]
        if up is not None:
            cmd += ["--upstream", f"http://{host}:{ports[up]}"]
        # The ministry's bridge records the programme where the server serves recordings from.
        env = {**os.environ, "HOINGHI_BRIDGE_RECORDINGS_DIR": str(settings.recordings_path.resolve())} \
            if up is None else None
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, env=env)
        running.append(RunningBridge(code, url, proc))
    _wait_listening(host, [ports[c] for c, _o, _u in BRIDGES], running)
    bridges = ", ".join(f"{b.unit}={b.url}" for b in running)
    print(f"Cầu truyền hình mẫu: {bridges}", flush=True)
    return replace(settings, bridges=bridges), running


def _wait_listening(host: str, ports: list[int], running: list[RunningBridge], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    for port in ports:
        while _free(host, port):
            if time.monotonic() > deadline or any(b.proc.poll() is not None for b in running):
                print("Cảnh báo: cầu truyền hình mẫu chưa sẵn sàng; xem nhật ký ở trên.", flush=True)
                return
            time.sleep(0.1)


def stop(running: list[RunningBridge]) -> None:
    for bridge in running:
        if bridge.proc.poll() is None:
            bridge.proc.terminate()
    for bridge in running:
        try:
            bridge.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            bridge.proc.kill()
