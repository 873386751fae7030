"""``hoinghi bridge`` starts a bridge that answers on the address it prints (port 0 here)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.media_util import KEY

ROOT = Path(__file__).resolve().parent.parent


async def test_hoinghi_bridge_serves_healthz(tmp_path: Path) -> None:
    # The bridge's own variables (token, recordings) are not server settings: the server's loader
    # must let `hoinghi bridge` start with them (it refused HOINGHI_BRIDGE_RECORDINGS_DIR, so the
    # demo's central bridge never started and nothing was recorded).
    env = {**os.environ, "HOINGHI_SECRET_KEY": KEY.decode(), "HOINGHI_VAR_DIR": str(tmp_path),
           "HOINGHI_BRIDGE_TOKEN": "not-used-here", "HOINGHI_BRIDGE_RECORDINGS_DIR": str(tmp_path / "rec")}
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


def test_recordings_folder_from_the_command_line_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from bridge.cli import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    monkeypatch.setenv("HOINGHI_BRIDGE_RECORDINGS_DIR", "/srv/from-env")
    base = ["--unit", "BCA", "--server", "http://s"]
    assert config_from_args(parser.parse_args(base), KEY).recordings_dir == "/srv/from-env"
    given = config_from_args(parser.parse_args([*base, "--recordings-dir", "/srv/rec"]), KEY)
    assert given.recordings_dir == "/srv/rec"

