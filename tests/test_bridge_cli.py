"""``hoinghi bridge`` starts a bridge that answers on the address it prints (port 0 here)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp

from tests.media_util import KEY

ROOT = Path(__file__).resolve().parent.parent


async def test_hoinghi_bridge_serves_healthz(tmp_path: Path) -> None:
    env = {**os.environ, "HOINGHI_SECRET_KEY": KEY.decode(), "HOINGHI_VAR_DIR": str(tmp_path)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from server.cli import main; raise SystemExit(main())", "bridge", "--unit", "01",
        "--server", "http://127.0.0.1:1", "--listen", "127.0.0.1:0", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert "Điểm cầu 01" in line, line
        url = line.split("tại ", 1)[1].split()[0]
        async with aiohttp.ClientSession() as http, http.get(f"{url}/healthz") as resp:
            assert resp.status == 200
            assert (await resp.json())["unit"] == "01"
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


async def test_bad_listen_address_is_one_clear_line(tmp_path: Path) -> None:
    env = {**os.environ, "HOINGHI_SECRET_KEY": KEY.decode(), "HOINGHI_VAR_DIR": str(tmp_path)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from server.cli import main; raise SystemExit(main())", "bridge", "--unit", "01",
        "--server", "http://127.0.0.1:1", "--listen", "khong-phai-dia-chi", cwd=ROOT, env=env,
        stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert "HOST:PORT" in err.decode()


async def test_another_aiortc_version_is_refused_before_the_bridge_starts(tmp_path: Path) -> None:
    """The compat module names internals of one aiortc minor version: on any other the bridge
    does not start (it would transcode or forward nothing), it says why in one line."""
    env = {**os.environ, "HOINGHI_BRIDGE_KEY": KEY.decode()}
    program = ("import aiortc; aiortc.__version__ = '1.17.0'\n"
               "from bridge.cli import main; raise SystemExit(main())")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", program, "--unit", "01", "--server", "http://127.0.0.1:1", "--listen", "127.0.0.1:0",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2, (out, err)
    lines = out.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Lỗi: điểm cầu cần aiortc 1.16.x"), lines
    assert "1.17.0" in lines[0] and "aiortc~=1.16.0" in lines[0]
    assert "Điểm cầu 01" not in out.decode() and not err.decode().strip()
