"""The parts of the weak-link media test (tests/test_weak_link.py) and bench (bench/weaklink.py),
each a real peer in its own process so a subscriber can run inside a network namespace
(tests/netns_util.py) and nobody's decoder steals another's CPU:

- ``bridge UNIT``: a pass-through bridge on all addresses (the namespace reaches it at the veth's
  host address), every codec use counted (tests/bridge_process.py); ``counts`` on stdin answers.
- ``publish URL TOKEN``: the chair's camera as two renditions (issue #16): 640×480 at 700 kbit/s
  then 320×240 at 140 kbit/s, two video m-lines, VP8 encoded here (keyframes only when asked),
  plus a microphone. Prints one JSON line a second: per rendition bytes sent, keyframes and its
  own freezes (a camera starved of CPU on a crowded machine sends late).
- ``subscribe URL TOKEN``: a site playing WHEP with one video and one audio m-line, decoding, as a
  viewer sees it. Prints ``{"event": "size", …}`` at each new frame size and one JSON line a second:
  frames decoded, frame size, longest gap between frames, freezes so far, video bytes received (and
  of them retransmissions), packets it NACKed and keyframes it asked for (PLI), all since its start.

A freeze is counted as WebRTC's ``totalFreezesDuration`` counts it: a gap between two decoded frames
longer than max(3 × the mean frame interval, the mean + 150 ms), all of it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiortc import RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack

from bridge import aiortc_compat
from tests.media_util import KEY, EncodedVideoTrack, peer_connection, post_sdp

ROOT = Path(__file__).resolve().parent.parent
HIGH, LOW = (640, 480), (320, 240)
HIGH_BPS, LOW_BPS, FPS = 700_000, 140_000, 15  # 15 fps: a 2-core machine encodes both live
BRIDGE_UNIT = "HN"


class MovingCamera(EncodedVideoTrack):
    """A camera whose picture moves (bars sliding by, fresh grain every frame) so its encoder, in
    constant-rate mode, really spends ``bitrate``: the link's limit then bites as a real camera's would."""

    def __init__(self, size: tuple[int, int], bitrate: int, fps: int = FPS) -> None:
        super().__init__("vp8", size[0], size[1], fps, bitrate)
        self.codec.qmin, self.codec.qmax = 2, 56  # type: ignore[attr-defined]  # as aiortc's VP8 encoder
        self.codec.thread_count = 1  # one thread and libvpx's fastest setting: ~5 ms a 640×480 frame
        rate = str(bitrate)
        self.codec.options = {**self.codec.options, "cpu-used": "16", "minrate": rate, "maxrate": rate,
                              "bufsize": rate, "undershoot-pct": "100", "overshoot-pct": "15"}
        x = np.arange(size[0])
        bars = (60 + 140 * ((x // max(8, size[0] // 10)) % 2)).astype(np.uint8)
        self._bars = np.tile(bars, (size[1], 1))
        self._chroma = np.full((size[1] // 2, size[0]), 128, np.uint8)
        self.sent_bytes = 0
        self.freezes = Freezes()  # a camera starved of CPU sends late: its viewers' freezes start here

    def _frame(self) -> av.VideoFrame:
        w, h = self.width, self.height
        luma = np.roll(self._bars, self._index * max(1, w // 160), axis=1)
        grain = np.frombuffer(os.urandom(w * h), np.uint8).reshape(h, w) & 15
        frame = av.VideoFrame.from_ndarray(np.concatenate([luma + grain, self._chroma]), format="yuv420p")
        frame.pts = self._index
        return frame

    async def recv(self) -> av.Packet:
        packet = await super().recv()
        self.sent_bytes += packet.size
        self.freezes.tick(time.monotonic())
        return packet


# ---- the processes' own code (python -m tests.weak_link_util …) ----

async def _bridge(unit: str) -> None:
    from aiohttp import web

    from bridge.app import create_app
    from bridge.room import BridgeConfig
    from tests import bridge_process  # counts every codec the bridge creates or uses (must stay 0)

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("aioice").setLevel(logging.WARNING)
    runner = web.AppRunner(create_app(BridgeConfig(unit=unit, key=KEY)), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "0.0.0.0", 0)  # the namespace reaches it through the veth
    await site.start()
    print(json.dumps({"port": site._server.sockets[0].getsockname()[1]}), flush=True)  # type: ignore[union-attr]
    try:
        while line := await asyncio.to_thread(sys.stdin.readline):
            if line.strip() == "counts":
                print(json.dumps({"counts": bridge_process.COUNTS}), flush=True)
    finally:
        await runner.cleanup()


async def _publish(url: str, tok: str) -> None:
    pc = peer_connection()
    cameras = {"high": MovingCamera(HIGH, HIGH_BPS), "low": MovingCamera(LOW, LOW_BPS)}
    try:
        for camera in cameras.values():  # the first video m-line is the high rendition (docs/protocol.md)
            transceiver = pc.addTransceiver(camera, direction="sendonly")
            transceiver.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                                             if c.mimeType in ("video/VP8", "video/rtx")])
            aiortc_compat.on_keyframe_request(transceiver.sender, camera.request_keyframe)
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        status, answer, _ = await post_sdp(f"{url}/meetings/1/whip", tok, pc.localDescription.sdp)
        if status != 201:
            raise SystemExit(f"WHIP refused: {status} {answer}")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        aiortc_compat.mark_passthrough(pc, kinds=("video",))
        await _report_until_stdin_closes(lambda: {
            "t": time.monotonic(), "state": pc.connectionState,
            **{f"{k}_bytes": c.sent_bytes for k, c in cameras.items()},
            **{f"{k}_keyframes": c.keyframes for k, c in cameras.items()},
            **{f"{k}_freeze_ms": round(1000 * c.freezes.frozen_s) for k, c in cameras.items()}})
    finally:
        await pc.close()


@dataclass
class Freezes:
    """Gaps between frames, and the time frozen as WebRTC counts it."""

    last: float | None = None
    intervals: deque[float] = field(default_factory=lambda: deque(maxlen=30))
    frozen_s: float = 0.0
    longest_gap_s: float = 0.0  # since the last report

    def tick(self, now: float) -> float:
        """A frame at ``now``; returns the freeze it ended (0: none)."""
        frozen = 0.0
        if self.last is not None:
            gap = now - self.last
            if len(self.intervals) >= 5:
                mean = sum(self.intervals) / len(self.intervals)
                if gap > max(3 * mean, mean + 0.150):
                    self.frozen_s += gap
                    frozen = gap
            self.intervals.append(gap)
            self.longest_gap_s = max(self.longest_gap_s, gap)
        self.last = now
        return frozen


@dataclass
class Viewer(Freezes):
    """What one player's viewer sees, frame by frame."""

    frames: int = 0
    size: tuple[int, int] = (0, 0)
    video_bytes: int = 0  # every video packet, retransmissions included
    rtx_bytes: int = 0  # retransmissions alone
    nacked: int = 0  # packets it asked again
    plis: int = 0  # keyframes it asked for

    def on_frame(self, frame: av.VideoFrame, now: float) -> None:
        frozen = self.tick(now)
        if frozen:
            print(json.dumps({"event": "freeze", "t": now, "ms": round(1000 * frozen)}), flush=True)
        self.frames += 1
        if (frame.width, frame.height) != self.size:
            self.size = (frame.width, frame.height)
            print(json.dumps({"event": "size", "t": now, "w": frame.width, "h": frame.height,
                              "frames": self.frames}), flush=True)

    def report(self, now: float) -> dict[str, Any]:
        waiting = now - self.last if self.last is not None else 0.0  # a freeze still going on shows too
        out = {"t": now, "frames": self.frames, "w": self.size[0], "h": self.size[1],
               "gap_ms": round(1000 * max(self.longest_gap_s, waiting)), "freeze_ms": round(1000 * self.frozen_s),
               "video_bytes": self.video_bytes, "rtx_bytes": self.rtx_bytes, "nacked": self.nacked,
               "plis": self.plis}
        self.longest_gap_s = 0.0
        return out


async def _subscribe(url: str, tok: str) -> None:
    pc = peer_connection()
    viewer = Viewer()
    tasks: list[asyncio.Task[None]] = []

    async def watch(track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, av.VideoFrame):
                    viewer.on_frame(frame, time.monotonic())

    pc.on("track", lambda track: tasks.append(asyncio.ensure_future(watch(track))))
    try:
        video = pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        receiver = video.receiver
        receive, nack, pli = receiver._handle_rtp_packet, receiver._send_rtcp_nack, receiver._send_rtcp_pli

        async def counted(packet: Any, arrival_time_ms: int) -> None:
            viewer.video_bytes += len(packet.payload) + 12
            if packet.payload_type in {c.payloadType for c in video._codecs if c.name.lower() == "rtx"}:
                viewer.rtx_bytes += len(packet.payload) + 12
            await receive(packet, arrival_time_ms=arrival_time_ms)

        async def nacking(media_ssrc: int, lost: list[int]) -> None:
            viewer.nacked += len(lost)
            await nack(media_ssrc, lost)

        async def asking(media_ssrc: int) -> None:
            viewer.plis += 1
            await pli(media_ssrc)

        receiver._handle_rtp_packet = counted  # type: ignore[method-assign]
        receiver._send_rtcp_nack = nacking  # type: ignore[method-assign]
        receiver._send_rtcp_pli = asking  # type: ignore[method-assign]
        await pc.setLocalDescription(await pc.createOffer())
        status, answer, _ = await post_sdp(url, tok, pc.localDescription.sdp)
        if status != 201:
            raise SystemExit(f"WHEP refused: {status} {answer}")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await _report_until_stdin_closes(lambda: {**viewer.report(time.monotonic()), "state": pc.connectionState})
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await pc.close()


async def _report_until_stdin_closes(report: Callable[[], dict[str, Any]]) -> None:
    closed = asyncio.ensure_future(asyncio.to_thread(sys.stdin.read))
    try:
        while not closed.done():
            await asyncio.wait([closed], timeout=1.0)
            print(json.dumps(report()), flush=True)
    finally:
        closed.cancel()


# ---- the test's or bench's side ----

@dataclass
class Child:
    """One of the processes above: its JSON lines in ``reports`` (and size changes in ``sizes``),
    its log (stderr) in ``log``."""

    name: str
    proc: asyncio.subprocess.Process
    log: Path
    reports: list[dict[str, Any]] = field(default_factory=list)
    sizes: list[dict[str, Any]] = field(default_factory=list)
    freezes: list[dict[str, Any]] = field(default_factory=list)  # each freeze a viewer saw, when it ended
    lines: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    reader: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while raw := await self.proc.stdout.readline():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if line.get("event") == "size":
                self.sizes.append(line)
            elif line.get("event") == "freeze":
                self.freezes.append(line)
            elif "t" in line:
                self.reports.append(line)
            else:
                self.lines.put_nowait(line)

    async def answer(self, within: float = 60.0) -> dict[str, Any]:
        """The next line that is neither a report nor an event (the bridge's port, its counts)."""
        try:
            return await asyncio.wait_for(self.lines.get(), within)
        except TimeoutError:
            raise AssertionError(f"{self.name} said nothing in {within:.0f} s; its log:\n{self.tail()}") from None

    def ask(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def summary(self, last: int = 40, origin: float | None = None) -> str:
        """Its size changes and last reports, one line each, times in seconds from ``origin`` (its
        first report if None): for a failure's or a bench's reader."""
        t0 = origin if origin is not None else self.reports[0]["t"] if self.reports else 0.0
        sizes = " ".join(f"{s['t'] - t0:+.1f}s:{s['w']}x{s['h']}" for s in self.sizes)
        rows = [" ".join(f"{k}={round(v - t0, 1) if k == 't' else v}" for k, v in r.items())
                for r in self.reports[-last:]]
        return "\n".join([f"sizes {sizes}", *rows])

    @property
    def latest(self) -> dict[str, Any]:
        return self.reports[-1] if self.reports else {}

    async def stop(self) -> None:
        """Close its stdin (it ends its peer connection and exits); killed if it does not in 5 s."""
        if self.proc.returncode is None:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        if self.reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.reader, 5)


async def spawn(name: str, args: list[str], log_dir: Path, prefix: list[str] | None = None) -> Child:
    """``python -m tests.weak_link_util *args``, behind ``prefix`` (``ip netns exec NS``) if given."""
    log = log_dir / f"{name}.log"
    with log.open("ab") as err:
        proc = await asyncio.create_subprocess_exec(
            *(prefix or []), sys.executable, "-m", "tests.weak_link_util", *args, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=err)
    child = Child(name, proc, log)
    child.reader = asyncio.create_task(child._read(), name=f"read-{name}")
    return child


async def stop_all(children: list[Child]) -> None:
    await asyncio.gather(*(child.stop() for child in children), return_exceptions=True)


def main(argv: list[str]) -> None:
    role, *rest = argv
    runs: dict[str, Callable[..., Any]] = {"bridge": _bridge, "publish": _publish, "subscribe": _subscribe}
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(runs[role](*rest))


if __name__ == "__main__":
    main(sys.argv[1:])

