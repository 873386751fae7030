"""Relay CPU per subscriber: the pass-through bridge against aiortc's stock MediaRelay path.

One process tree on this machine: this process runs the publisher (a 1 Mbps 30 fps 640×480 VP8
camera that makes keyframes only when asked) and every subscriber; the relay runs in a child
process whose CPU time (``/proc/<pid>/stat``) is the figure. Per-subscriber CPU = (CPU with N
subscribers − CPU with none) ÷ N; subscribers per core = 100 % ÷ that.

- pass-through: ``python -m bridge`` (WHIP/WHEP, join tokens), subscribers take packets as they
  come (they do not decode: their CPU is not measured anyway);
- stock: a minimal aiortc server in this file (``--stock-server``): the publisher's track decoded
  once, ``MediaRelay.subscribe()`` per subscriber, one VP8 encoder per subscriber.

Also measured on the pass-through path: a late joiner's wait for its first decoded frame (p95 over
sequential joins, the camera's natural keyframe interval being hours), and the hop delay (camera →
subscriber, the same encoded bytes identified by hash, taken when the subscriber holds the whole
frame). Bridge and subscribers receive as the bridge does: a frame is handed on at its last packet
(``bridge.frame_assembly``). Until that path existed the figure also held one frame interval of
aiortc's jitter buffer (it releases a frame when the next one begins) at the bridge and one at the
subscriber; ``--subscriber-jitter-buffer`` puts the subscriber's back, for comparison.

The relay's CPU with and without subscribers is each the median of ``--windows`` windows (a
neighbour's burst on a shared machine moves one window, not the figure).

Usage: ``.venv/bin/python bench/relay.py [--subs 40] [--stock-subs 3] [--window 8] [--windows 3] [--late 10]
[--subscriber-jitter-buffer] [--passthrough-only]``.
Ends with one line ``RESULT passthrough_subs_per_core=… stock_subs_per_core=… ratio=…
late_join_first_frame_p95_ms=… hop_delay_p50_ms=…``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import hashlib
import os
import statistics
import sys
import time
from pathlib import Path

THIS_FILE = str(Path(__file__).resolve())
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
from aiohttp import web  # noqa: E402
from aiortc import RTCSessionDescription  # noqa: E402
from aiortc.contrib.media import MediaRelay  # noqa: E402
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack  # noqa: E402

from bridge import aiortc_compat  # noqa: E402
from tests.media_util import KEY, peer_connection, post_sdp, token, whep, whip  # noqa: E402

BRIDGE = "HN"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime, all threads


class TimedCamera(MediaStreamTrack):
    """A 640×480 30 fps VP8 camera at ~1 Mbps that costs this process almost nothing: 60 frames
    of grain are encoded once (a keyframe, then deltas) and looped; a keyframe request is answered
    with the pre-encoded keyframe. The relay forwards the same bytes at the same rate as from a
    live encoder (subscribers here do not decode, except late joiners, who decode only their
    first frame: the keyframe). Remembers when each frame left, by content hash."""

    kind = "video"
    mime_type = "video/VP8"

    def __init__(self, fps: int = 30, bitrate: int = 1_000_000, frames: int = 60) -> None:
        super().__init__()
        self.fps = fps
        codec = av.CodecContext.create("libvpx", "w")
        codec.width, codec.height, codec.pix_fmt = 640, 480, "yuv420p"
        codec.bit_rate = bitrate
        codec.time_base = fractions.Fraction(1, fps)
        codec.gop_size = 1_000_000
        codec.qmin, codec.qmax = 2, 56  # as aiortc's own VP8 encoder
        codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "minrate": str(bitrate),
                         "maxrate": str(bitrate), "bufsize": str(bitrate), "undershoot-pct": "100",
                         "overshoot-pct": "15"}
        grain = bytes(120 + b % 16 for b in range(256))  # low-amplitude noise: ~1 Mbps at these settings
        self.encoded: list[bytes] = []
        for i in range(frames):
            frame = av.VideoFrame(640, 480, "yuv420p")
            frame.planes[0].update(os.urandom(frame.planes[0].buffer_size).translate(grain))
            for plane in frame.planes[1:]:
                plane.update(bytes([128]) * plane.buffer_size)
            frame.pts, frame.time_base = i, fractions.Fraction(1, fps)
            self.encoded.append(b"".join(bytes(p) for p in codec.encode(frame)))
        self.bitrate = sum(len(e) for e in self.encoded[1:]) * 8 * fps / (frames - 1)
        self._index = 0
        self._start: float | None = None
        self._force = True
        self.keyframes = 0
        self.sent_at: dict[bytes, float] = {}

    def request_keyframe(self) -> None:
        self._force = True

    async def recv(self) -> av.Packet:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._index / self.fps
        now = time.monotonic()
        if due > now:
            await asyncio.sleep(due - now)
        elif now - due > 1 / self.fps:  # fell behind: skip frames, as a camera would
            self._index = int((now - self._start) * self.fps)
        if self._force:
            data, self._force = self.encoded[0], False
            self.keyframes += 1
        else:
            data = self.encoded[1 + self._index % (len(self.encoded) - 1)]
        packet = av.Packet(data)
        packet.pts = self._index * 90000 // self.fps
        packet.time_base = fractions.Fraction(1, 90000)
        self._index += 1
        self.sent_at[hashlib.blake2b(data, digest_size=8).digest()] = time.monotonic()
        return packet


class PacketSubscriber:
    """A WHEP (or stock) subscriber that takes encoded frames without decoding them."""

    whole_frames = True  # False: aiortc's own jitter buffer at the subscriber (--subscriber-jitter-buffer)

    def __init__(self, camera: TimedCamera | None) -> None:
        self.pc = peer_connection()
        self.camera = camera
        self.frames = 0
        self.delays: list[float] = []
        self.task: asyncio.Task[None] | None = None

    async def start(self, url: str, tok: str | None) -> None:
        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self.task = asyncio.ensure_future(self._consume(track))

        self.pc.addTransceiver("video", direction="recvonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        status, answer, _ = await post_sdp(url, tok, self.pc.localDescription.sdp)
        assert status == 201, answer
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        aiortc_compat.mark_passthrough(self.pc, whole_frames=self.whole_frames)

    async def _consume(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                packet = await track.recv()
                self.frames += 1
                if self.camera is not None and isinstance(packet, av.Packet):
                    sent = self.camera.sent_at.get(hashlib.blake2b(bytes(packet), digest_size=8).digest())
                    if sent is not None:
                        self.delays.append(time.monotonic() - sent)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.pc.close()


async def spawn(*args: str, env: dict[str, str] | None = None) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, *args, stdout=asyncio.subprocess.PIPE,
                                                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
    url = next(word for word in line.split() if word.startswith("http://"))
    return proc, url


async def stop(proc: asyncio.subprocess.Process) -> None:
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), 10)
    except TimeoutError:
        proc.kill()
        await proc.wait()


async def cpu_share(pid: int, window: float) -> float:
    """Fraction of one core the process used over ``window`` seconds."""
    start_cpu, start = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(window)
    return (cpu_seconds(pid) - start_cpu) / (time.monotonic() - start)


async def wait_flowing(subs: list[PacketSubscriber], frames: int = 30, within: float = 60) -> None:
    deadline = time.monotonic() + within
    for _ in range(int(within / 0.1)):
        if all(s.frames >= frames for s in subs):
            return
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    raise SystemExit(f"subscribers did not all receive {frames} frames: {[s.frames for s in subs]}")


async def shares(pid: int, window: float, windows: int) -> float:
    """The median of ``windows`` windows of :func:`cpu_share` (a neighbour's burst moves one window,
    not the figure); each printed."""
    figures = [await cpu_share(pid, window) for _ in range(windows)]
    print(f"  relay CPU in {windows} windows of {window:.0f} s: {', '.join(f'{f:.2%}' for f in figures)}", flush=True)
    return statistics.median(figures)


async def measure(pid: int, url_for_sub: str, tok: str | None, subs_n: int, window: float,
                  camera: TimedCamera, windows: int) -> tuple[float, float, list[float]]:
    """(baseline share, share with ``subs_n`` subscribers, hop delays): medians of ``windows`` windows."""
    await asyncio.sleep(3)
    base = await shares(pid, window, windows)
    subs = [PacketSubscriber(camera) for _ in range(subs_n)]
    try:
        for sub in subs:
            await sub.start(url_for_sub, tok)
        await wait_flowing(subs)
        await asyncio.sleep(2)
        for sub in subs:
            sub.delays.clear()
        keyframes, frames, own = camera.keyframes, [s.frames for s in subs], cpu_seconds(os.getpid())
        started = time.monotonic()
        loaded = await shares(pid, window, windows)
        elapsed = time.monotonic() - started
        delays = [d for sub in subs for d in sub.delays]
        got = [s.frames - f for s, f in zip(subs, frames, strict=True)]
        print(f"  during the windows: subscribers (this process) used {(cpu_seconds(os.getpid()) - own) / elapsed:.0%} "
              f"of a core, frames per subscriber {min(got)}–{max(got)} (camera sent ~{round(elapsed * camera.fps)}), "
              f"keyframes asked of the camera {camera.keyframes - keyframes}", flush=True)
    finally:
        for sub in subs:
            await sub.close()
    return base, loaded, delays


async def late_joins(url: str, count: int) -> list[float]:
    waits = []
    for i in range(count):
        await asyncio.sleep(1.5)
        player = await whep(url, 1, token(BRIDGE, f"LATE{i}"), audio_tracks=0)
        try:
            await asyncio.wait_for(player.first_frame.wait(), 10)
            waits.append(player.frames[0][0] - player.started)
        finally:
            await player.close()
    return waits


async def run_passthrough(args: argparse.Namespace) -> tuple[float, list[float], list[float]]:
    proc, url = await spawn("-m", "bridge", "--unit", BRIDGE, "--server", "http://127.0.0.1:1",
                            "--listen", "127.0.0.1:0", env={"HOINGHI_BRIDGE_KEY": KEY.decode()})
    camera = TimedCamera()
    publisher = None
    try:
        print(f"camera: 640x480 {camera.fps} fps VP8, {camera.bitrate / 1e6:.2f} Mbps", flush=True)
        publisher = await whip(url, 1, token(BRIDGE, "CHAIR", "chair"), camera, audio=False)  # type: ignore[arg-type]
        # pinned to the high rendition: the figure is forwarding, not what adaptation makes of a loaded machine
        base, loaded, delays = await measure(proc.pid, f"{url}/meetings/1/whep?layer=high", token(BRIDGE, "SUB"),
                                             args.subs, args.window, camera, args.windows)
        print(f"pass-through: relay {base:.1%} of a core with 0 subscribers, {loaded:.1%} with {args.subs}",
              flush=True)
        waits = await late_joins(url, args.late)
        print(f"late joins (ms): {[round(w * 1000) for w in waits]}", flush=True)
    finally:
        if publisher is not None:
            await publisher.pc.close()
        await stop(proc)
    return (loaded - base) / args.subs, waits, delays


async def run_stock(args: argparse.Namespace) -> float:
    proc, url = await spawn(THIS_FILE, "--stock-server")
    camera = TimedCamera()
    publisher = peer_connection()
    try:
        transceiver = publisher.addTransceiver(camera, direction="sendonly")
        aiortc_compat.on_keyframe_request(transceiver.sender, camera.request_keyframe)
        await publisher.setLocalDescription(await publisher.createOffer())
        status, answer, _ = await post_sdp(f"{url}/publish", None, publisher.localDescription.sdp)
        assert status == 201, answer
        await publisher.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        aiortc_compat.mark_passthrough(publisher)
        base, loaded, _ = await measure(proc.pid, f"{url}/play", None, args.stock_subs, args.window, camera,
                                       args.windows)
        print(f"stock MediaRelay: relay {base:.1%} of a core with 0 subscribers, {loaded:.1%} with "
              f"{args.stock_subs}", flush=True)
    finally:
        await publisher.close()
        await stop(proc)
    return (loaded - base) / args.stock_subs


def stock_server() -> None:
    """aiortc's stock path: decode the publisher once, MediaRelay, encode per subscriber."""
    relay = MediaRelay()
    source: list[MediaStreamTrack] = []
    pcs = set()

    async def answer(request: web.Request, setup: object) -> web.Response:
        pc = peer_connection()
        pcs.add(pc)
        setup(pc)  # type: ignore[operator]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=await request.text(), type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return web.Response(status=201, text=pc.localDescription.sdp, content_type="application/sdp")

    async def publish(request: web.Request) -> web.Response:
        def setup(pc: object) -> None:
            pc.on("track", lambda track: source.append(track))  # type: ignore[attr-defined]
        return await answer(request, setup)

    async def play(request: web.Request) -> web.Response:
        def setup(pc: object) -> None:
            pc.addTransceiver(relay.subscribe(source[0]), direction="sendonly")  # type: ignore[attr-defined]
        return await answer(request, setup)

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/publish", publish)
        app.router.add_post("/play", play)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"stock relay at http://127.0.0.1:{port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(args: argparse.Namespace) -> None:
    pass_cpu, waits, delays = await run_passthrough(args)
    if args.passthrough_only:  # a quick look at the bridge alone (no RESULT line: no ratio without the stock path)
        print(f"relay CPU per subscriber: pass-through {pass_cpu:.3%} of a core ({1 / pass_cpu:.0f} per core), "
              f"hop delay p50 {statistics.median(delays) * 1000:.0f} ms", flush=True)
        return
    stock_cpu = await run_stock(args)
    pass_per_core = 1 / pass_cpu if pass_cpu > 0 else float("inf")
    stock_per_core = 1 / stock_cpu if stock_cpu > 0 else float("inf")
    print(f"relay CPU per subscriber: pass-through {pass_cpu:.2%} of a core, stock {stock_cpu:.2%}", flush=True)
    print(f"RESULT passthrough_subs_per_core={pass_per_core:.0f} stock_subs_per_core={stock_per_core:.1f} "
          f"ratio={pass_per_core / stock_per_core:.1f} "
          f"late_join_first_frame_p95_ms={percentile(waits, 0.95) * 1000:.0f} "
          f"hop_delay_p50_ms={statistics.median(delays) * 1000:.0f}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subs", type=int, default=40, help="pass-through subscribers")
    parser.add_argument("--stock-subs", type=int, default=3, help="stock MediaRelay subscribers")
    parser.add_argument("--window", type=float, default=8.0, help="seconds of each CPU measurement")
    parser.add_argument("--windows", type=int, default=3, help="CPU measurements per figure (their median)")
    parser.add_argument("--late", type=int, default=10, help="sequential late joiners")
    parser.add_argument("--subscriber-jitter-buffer", action="store_true",
                        help="subscribers keep aiortc's jitter buffer (a frame waits for the next one)")
    parser.add_argument("--passthrough-only", action="store_true",
                        help="measure the pass-through bridge alone (no stock run, no RESULT line)")
    parser.add_argument("--stock-server", action="store_true", help=argparse.SUPPRESS)
    cli = parser.parse_args()
    PacketSubscriber.whole_frames = not cli.subscriber_jitter_buffer
    if cli.stock_server:
        stock_server()
    else:
        asyncio.run(main(cli))
