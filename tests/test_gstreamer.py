"""A third-party WebRTC stack against the real bridges: GStreamer's ``webrtcbin`` (Debian's
packages, driven by ``tests/gst_whip.py`` under Debian's own Python) publishes the chair's VP8 and,
in a second case, H.264 to the central bridge with a real join token; a commune's aiortc player
behind a real provincial bridge decodes it at the size sent, and a GStreamer WHEP player at the
province decodes the programme.

GStreamer's DTLS holds an RSA certificate: without the bridge's ECDHE-RSA suites
(``bridge.aiortc_compat``, item 7) every one of these connections dies in the handshake."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from bridge.app import STATE, create_app
from bridge.room import BridgeConfig, BridgeState
from tests.conftest import need_service
from tests.media_util import KEY, STEP, Player, close_peers, token, until, whep

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "gst_whip.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with python3-gst-1.0 (gi); the virtualenv has no gi
CENTRAL, PROVINCE = "TW", "HN"
SIZE = (320, 240)
PROBE = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstWebRTC', '1.0'); "
         "from gi.repository import Gst; Gst.init(None); "
         "missing = [e for e in ('webrtcbin', 'nicesrc', 'vp8enc', 'x264enc', 'opusenc', 'avdec_h264', 'vp8dec') "
         "if Gst.ElementFactory.find(e) is None]; print(' '.join(missing))")
APT = ("gstreamer1.0-plugins-bad gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-nice "
       "gstreamer1.0-libav python3-gst-1.0 gir1.2-gst-plugins-bad-1.0")


@pytest.fixture(scope="module")
def gstreamer() -> str:
    """Debian's Python with GStreamer's webrtcbin and the codecs these tests use."""
    try:
        probe = subprocess.run([SYSTEM_PYTHON, "-c", PROBE], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        need_service(f"GStreamer unavailable ({SYSTEM_PYTHON}: {exc}); apt-get install {APT}")
    if probe.returncode != 0 or probe.stdout.strip():
        missing = probe.stdout.strip() or probe.stderr.strip().splitlines()[-1:]
        need_service(f"GStreamer's webrtcbin unavailable (missing: {missing}); apt-get install {APT}")
    return SYSTEM_PYTHON


class GstClient:
    """One ``gst_whip.py`` process and the JSON lines it printed."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.events.append(json.loads(line))

    def last(self, event: str) -> dict[str, Any] | None:
        return next((e for e in reversed(self.events) if e["event"] == event), None)

    async def until_connected(self) -> None:
        def settled() -> bool:
            state = self.last("connection")
            ended = any(self.last(e) is not None for e in ("refused", "error")) or self.proc.returncode is not None
            return ended or (state is not None and state["state"] in ("connected", "failed"))
        await until(settled, STEP, f"the GStreamer client to connect (events: {self.events[-5:]})")
        refused = self.last("refused")
        assert refused is None, f"the bridge refused GStreamer's offer: {refused}"
        assert self.last("error") is None, f"GStreamer failed: {self.last('error')}"
        assert self.last("created") is not None and self.last("created")["status"] == 201  # type: ignore[index]
        state = self.last("connection")
        assert state is not None and state["state"] == "connected", \
            f"GStreamer's connection failed (DTLS: no shared cipher?): {self.events[-5:]}"

    async def close(self) -> None:
        """Close stdin: the client DELETEs its session and exits."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), STEP)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        await asyncio.gather(self._reader, return_exceptions=True)


@contextlib.asynccontextmanager
async def gst(python: str, mode: str, url: str, tok: str, codec: str) -> AsyncIterator[GstClient]:
    proc = await asyncio.create_subprocess_exec(
        python, str(SCRIPT), mode, url, tok, "--codec", codec, "--width", str(SIZE[0]), "--height", str(SIZE[1]),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    client = GstClient(proc)
    try:
        yield client
    finally:
        await client.close()


async def _start(config: BridgeConfig) -> tuple[TestServer, str, BridgeState]:
    server = TestServer(create_app(config), host="127.0.0.1", port=0)
    await server.start_server()
    return server, str(server.make_url("")).rstrip("/"), server.app[STATE]


@pytest.fixture
async def bridges() -> AsyncIterator[tuple[str, BridgeState, str, BridgeState]]:
    central, central_url, central_state = await _start(BridgeConfig(unit=CENTRAL, key=KEY))
    province, province_url, province_state = await _start(
        BridgeConfig(unit=PROVINCE, key=KEY, upstream_url=central_url, upstream_key=KEY))
    try:
        yield central_url, central_state, province_url, province_state
    finally:
        await province.close()
        await central.close()


@pytest.mark.parametrize("codec", ["vp8", "h264"])
async def test_gstreamer_publishes_and_plays_through_the_cascade(
        gstreamer: str, bridges: tuple[str, BridgeState, str, BridgeState], codec: str) -> None:
    central_url, central, province_url, _province = bridges
    name = {"vp8": "video/VP8", "h264": "video/H264"}[codec]
    players: list[Player] = []
    async with gst(gstreamer, "publish", f"{central_url}/meetings/1/whip", token(CENTRAL, "CHAIR", "chair"),
                   codec) as chair:
        try:
            await chair.until_connected()
            await until(lambda: central.room(1).video_codec is not None, STEP, "GStreamer's video at the centre")
            assert central.room(1).video_codec is not None and central.room(1).video_codec.mimeType == name

            # a commune behind its province (aiortc, decoding)
            commune = await whep(province_url, 1, token(PROVINCE, "B"))
            players.append(commune)
            await commune.wait_frames(30)
            assert commune.frames[-1][1:3] == SIZE, "the commune decodes the chair at the size sent"

            # GStreamer plays the programme at the province (WHEP) and decodes it
            async with gst(gstreamer, "play", f"{province_url}/meetings/1/whep", token(PROVINCE, "C"),
                           codec) as viewer:
                await viewer.until_connected()
                await until(lambda: (viewer.last("frames") or {"count": 0})["count"] >= 30, STEP,
                            f"30 frames decoded by GStreamer (events: {viewer.events[-3:]})")
                frames = viewer.last("frames")
                assert frames is not None and (frames["width"], frames["height"]) == SIZE
        finally:
            await close_peers(*players)
