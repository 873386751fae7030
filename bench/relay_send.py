"""The relay's CPU per subscriber, split: the send path per frame and the receive path per second.

A bridge runs in this process with bench/relay.py's camera publishing and ``--subs`` WHEP
subscribers (pinned to the high rendition) that do not decode. Measured with the thread's CPU clock
(user + system: the ``sendto`` calls included, and on loopback the kernel's delivery to the
receiving socket within them), so figures from runs on a loaded machine stay comparable:

- send: around each frame's ``Fanout.push`` on the programme's video timeline, ÷ subscribers;
- receive: around the bridge's ``RTCDtlsTransport._recv_next`` (its subscribers' RTCP that takes
  aiortc's path, and the publisher's RTP) and :meth:`bridge.rtcp_fast.FastRtcp.datagram_received`
  (the subscribers' RTCP handled on arrival), ÷ subscribers ÷ seconds; with the RTCP packets per
  subscriber per second by kind. Neither counts the event loop's own work between them (aioice's
  queue, the task wakeups), which is what the fast path saves most: for that,
- ``--ab-fast-rtcp N``: N rounds of two windows each, the subscribers' RTCP on the fast path in one
  and on aiortc's in the other, and this whole process's CPU (bridge and subscribers alike) per
  subscriber per second in each; only the bridge's path differs, so the difference is its saving.

Usage: ``.venv/bin/python bench/relay_send.py [--subs 20] [--frames 300] [--ab-fast-rtcp 0] [--ab-window 3]``.
Ends with ``RESULT send_us_per_sub_frame=… recv_us_per_sub_s=… packets_per_frame=…``.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import statistics
import sys
import time
from collections import Counter
from collections.abc import Generator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
from aiohttp.test_utils import TestServer  # noqa: E402
from aiortc.rtcdtlstransport import RTCDtlsTransport  # noqa: E402
from aiortc.rtp import RtcpPacket  # noqa: E402

from bench.relay import PacketSubscriber, TimedCamera, wait_flowing  # noqa: E402
from bridge import rtcp_fast  # noqa: E402
from bridge.app import STATE  # noqa: E402
from bridge.app import create_app as create_bridge_app  # noqa: E402
from bridge.room import BridgeConfig  # noqa: E402
from bridge.rtp_frames import FramePacker  # noqa: E402
from tests.media_util import KEY, token, whip  # noqa: E402

BRIDGE = "HN"


class _Resume:
    """Awaits what a stepped coroutine yielded and hands back its result."""

    def __init__(self, awaited: Any) -> None:
        self.awaited = awaited

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self.awaited)


async def main(args: argparse.Namespace) -> None:
    server = TestServer(create_bridge_app(BridgeConfig(unit=BRIDGE, key=KEY)), host="127.0.0.1", port=0)
    await server.start_server()
    url, state = str(server.make_url("")).rstrip("/"), server.app[STATE]
    camera = TimedCamera()
    publisher = await whip(url, 1, token(BRIDGE, "CHAIR", "chair"), camera, audio=False)  # type: ignore[arg-type]
    subs = [PacketSubscriber(None) for _ in range(args.subs)]
    recv_next, handle_rtcp = RTCDtlsTransport._recv_next, RTCDtlsTransport._handle_rtcp_data
    fast_received, parse = rtcp_fast.FastRtcp.datagram_received, rtcp_fast._parse
    try:
        for sub in subs:
            await sub.start(f"{url}/meetings/1/whep?layer=high", token(BRIDGE, "SUB"))
        await wait_flowing(subs)
        fanout = state.rooms[1].programme.video.fanout
        push, clock = fanout.push, time.thread_time
        samples: list[float] = []
        enough = asyncio.Event()
        received = [0.0]
        on_arrival = [0.0, 0]  # the RTCP handled on the fast path: CPU seconds, datagrams
        kinds: Counter[str] = Counter()
        ours = {t.sender.transport for peer in state.peers.values() for t in peer.pc.getTransceivers()}

        def timed_push(packet: Any, keyframe: bool, codec: str | None = None) -> None:
            start = clock()
            push(packet, keyframe, codec)
            samples.append(clock() - start)
            if len(samples) >= args.frames:
                enough.set()

        async def timed_recv(self: Any) -> None:  # the clock runs only while the coroutine does
            coro = recv_next(self)
            if self not in ours:
                return await coro
            value: Any = None
            while True:
                start = clock()
                try:
                    awaited = coro.send(value)
                except StopIteration:
                    received[0] += clock() - start
                    return None
                received[0] += clock() - start
                value = await _Resume(awaited)

        async def counted_rtcp(self: Any, data: bytes) -> None:
            if self in ours:
                kinds.update(type(p).__name__ + str(getattr(p, "fmt", "")) for p in RtcpPacket.parse(data))
            await handle_rtcp(self, data)

        def timed_fast(self: Any, data: bytes, addr: Any) -> None:
            start = clock()
            fast_received(self, data, addr)
            spent = clock() - start
            received[0] += spent
            if data and 127 < data[0] < 192 and 191 < data[1] < 224:
                on_arrival[0] += spent
                on_arrival[1] += 1

        def counted_parse(data: bytes) -> list[Any]:
            packets = parse(data)
            kinds.update(type(p).__name__ + str(getattr(p, "fmt", "")) for p in packets)
            return packets

        fasts = [f for f in map(rtcp_fast.fast_rtcp, ours) if f is not None]
        print(f"subscribers' RTCP on the fast path: {len(fasts)} of {len(ours)} transports", flush=True)
        if args.ab_fast_rtcp:
            await ab_fast_rtcp(fasts, args)
        fanout.push = timed_push  # type: ignore[method-assign]
        RTCDtlsTransport._recv_next = timed_recv  # type: ignore[method-assign]
        RTCDtlsTransport._handle_rtcp_data = counted_rtcp  # type: ignore[method-assign]
        for fast in fasts:  # the instances' bound methods are what the protocols call
            fast.protocol.datagram_received = timed_fast.__get__(fast)
        rtcp_fast._parse = counted_parse
        started, frames_before = time.monotonic(), sum(s.frames for s in subs)
        await enough.wait()
        elapsed = time.monotonic() - started
        fanout.push = push  # type: ignore[method-assign]
        got = sum(s.frames for s in subs) - frames_before
        per = sorted(s / args.subs * 1e6 for s in samples)
        print(f"{len(samples)} frames to {args.subs} subscribers in {elapsed:.1f} s ({got} frames received); "
              f"µs per subscriber per frame: median {statistics.median(per):.1f}, p10 {per[len(per) // 10]:.1f}, "
              f"p90 {per[len(per) * 9 // 10]:.1f}", flush=True)
        print("RTCP per subscriber per second:", {k: round(v / elapsed / args.subs, 2) for k, v in kinds.items()})
        if on_arrival[1]:
            print(f"RTCP handled on arrival: {on_arrival[1] / elapsed / args.subs:.2f} datagrams per subscriber per "
                  f"second, {on_arrival[0] / on_arrival[1] * 1e6:.1f} µs each", flush=True)
        print(f"RESULT send_us_per_sub_frame={statistics.median(per):.1f} "
              f"recv_us_per_sub_s={received[0] / elapsed / args.subs * 1e6:.0f} "
              f"packets_per_frame={packets_per_frame(camera):.1f}", flush=True)
    finally:
        RTCDtlsTransport._recv_next = recv_next  # type: ignore[method-assign]
        RTCDtlsTransport._handle_rtcp_data = handle_rtcp  # type: ignore[method-assign]
        rtcp_fast._parse = parse
        for sub in subs:
            await sub.close()
        await publisher.pc.close()
        await server.close()


async def ab_fast_rtcp(fasts: list[rtcp_fast.FastRtcp], args: argparse.Namespace) -> None:
    """This process's CPU per subscriber per second with the subscribers' RTCP on the fast path and
    on aiortc's, in alternate windows (the order flipped each round)."""
    cpu: dict[str, list[float]] = {"fast": [], "aiortc": []}
    for i in range(args.ab_fast_rtcp):
        for mode in ("fast", "aiortc") if i % 2 == 0 else ("aiortc", "fast"):
            for fast in fasts:
                fast.protocol.datagram_received = fast.datagram_received if mode == "fast" else fast.original
            await asyncio.sleep(0.5)  # what the other path had queued drains
            start, started = time.process_time(), time.monotonic()
            await asyncio.sleep(args.ab_window)
            cpu[mode].append((time.process_time() - start) / (time.monotonic() - started) / args.subs * 1e6)
    for fast in fasts:
        fast.protocol.datagram_received = fast.datagram_received
    fast_us, aiortc_us = statistics.median(cpu["fast"]), statistics.median(cpu["aiortc"])
    print(f"process CPU µs per subscriber per second (medians of {args.ab_fast_rtcp} windows): fast path "
          f"{fast_us:.0f}, aiortc's {aiortc_us:.0f}; saved {aiortc_us - fast_us:.0f} "
          f"(fast {[round(v) for v in cpu['fast']]}, aiortc {[round(v) for v in cpu['aiortc']]})", flush=True)


def packets_per_frame(camera: TimedCamera) -> float:
    """RTP packets per frame of the camera's delta frames (as the relay packetizes them)."""
    packer, counts = FramePacker(), []
    for i, data in enumerate(camera.encoded[1:]):
        packet = av.Packet(data)
        packet.pts, packet.time_base = i * 3000, fractions.Fraction(1, 90000)
        counts.append(len(packer.pack(packet, "video/vp8")[0]))
    return statistics.mean(counts)

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subs", type=int, default=20)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--ab-fast-rtcp", type=int, default=0, metavar="N",
                        help="rounds of process CPU with the subscribers' RTCP on the fast path, then aiortc's")
    parser.add_argument("--ab-window", type=float, default=3.0, help="seconds of each A/B window")
    asyncio.run(main(parser.parse_args()))
