"""The bridge's whole CPU per subscriber, and A/B of its fast paths in one bridge process.

bench/relay.py measures one bridge process per run (on a loaded machine its figure moves by ±10 %
from run to run); bench/relay_send.py times parts of the bridge from inside, which misses the
event loop's own work between them (task wakeups, queues). Here the bridge runs alone in a child
process (``--child``: bridge.app on a test server, told what to do by lines on its stdin) and
bench/relay.py's camera and ``--subs`` subscribers (pinned to the high rendition, not decoding) in
this one; the figure is the child's CPU time (user + system: its ``sendto`` calls and on loopback
the kernel's delivery within them included).

- ``per_sub_us_s``: (bridge CPU with the subscribers − with the publisher alone) ÷ subscribers, µs per second;
- ``--ab SWITCH``: alternate windows with one of the bridge's fast paths on and off (the order
  flipped each round), the same subscribers throughout; the median difference is what it saves.
  Switches: ``fast-rtcp`` (bridge.rtcp_fast: the subscribers' RTCP handled on arrival), ``gso``
  (bridge.udp_batch: a frame in one ``sendmsg`` with UDP segmentation; off by default), ``native``
  (bridge.native_send: a subscriber's frame built, protected and sent by one C call).

Usage: ``.venv/bin/python bench/relay_ab.py [--subs 40] [--window 5] [--ab fast-rtcp] [--rounds 6]``.
Ends with ``RESULT per_sub_us_s=…`` (and ``ab_saved_us_s=…`` with ``--ab``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

THIS_FILE = str(Path(__file__).resolve())
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp.test_utils import TestServer  # noqa: E402

from bench.relay import PacketSubscriber, TimedCamera, wait_flowing  # noqa: E402
from bridge import aiortc_compat as compat  # noqa: E402
from bridge import native_send, rtcp_fast, udp_batch  # noqa: E402
from bridge.app import STATE  # noqa: E402
from bridge.app import create_app as create_bridge_app  # noqa: E402
from bridge.direct_send import direct_sender  # noqa: E402
from bridge.room import BridgeConfig, BridgeState  # noqa: E402
from tests.media_util import KEY, token, whip  # noqa: E402

BRIDGE = "HN"


class BridgeChild:
    """The bridge in a child process of its own (nothing else runs there), driven by lines on its
    stdin: ``cpu`` (its CPU seconds so far), ``events``, ``switch NAME on|off``; one line of JSON back."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, THIS_FILE, "--child", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.url = json.loads(await self._line())["url"]

    async def _line(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        return (await asyncio.wait_for(self.proc.stdout.readline(), 60)).decode()

    async def ask(self, command: str) -> Any:
        assert self.proc is not None and self.proc.stdin is not None
        async with self._lock:
            self.proc.stdin.write(command.encode() + b"\n")
            await self.proc.stdin.drain()
            return json.loads(await self._line())

    async def cpu(self) -> float:
        return float(await self.ask("cpu"))

    async def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            await self.proc.wait()


_by_callback: dict[str, float] = {}  # --breakdown: CPU seconds per kind of event-loop callback, in the child


def _callback_kind(handle: Any) -> str:
    callback = handle._callback
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        return "task " + getattr(coro, "__qualname__", type(coro).__name__)
    if owner is not None and type(owner).__name__ == "_SelectorDatagramTransport":
        received = getattr(owner._protocol, "datagram_received", None)
        return "datagram in: " + getattr(received, "__qualname__", "?")
    return getattr(callback, "__qualname__", repr(callback))


def _break_down() -> None:
    """Time every callback the event loop runs (thread CPU), by kind."""
    run, clock = asyncio.events.Handle._run, time.thread_time

    def timed(handle: Any) -> None:
        start = clock()
        run(handle)
        kind = _callback_kind(handle)
        _by_callback[kind] = _by_callback.get(kind, 0.0) + clock() - start

    asyncio.events.Handle._run = timed  # type: ignore[method-assign]


def child() -> None:
    """The child's side (``--child``): the bridge, and the answers to the parent's lines."""
    async def run() -> None:
        server = TestServer(create_bridge_app(BridgeConfig(unit=BRIDGE, key=KEY)), host="127.0.0.1", port=0)
        await server.start_server()
        state = server.app[STATE]
        print(json.dumps({"url": str(server.make_url("")).rstrip("/")}), flush=True)
        reader = asyncio.StreamReader()
        await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := (await reader.readline()).decode().split():
            answer: Any = None
            if line[0] == "cpu":
                answer = time.process_time()
            elif line[0] == "events":
                answer = events(state)
            elif line[0] == "breakdown":
                if not _by_callback:
                    _break_down()
                answer = {k: round(v * 1e6) for k, v in _by_callback.items()}
            elif line[0] == "switch":
                answer = SWITCHES[line[1]](state, line[2] == "on")
            print(json.dumps(answer), flush=True)
        await server.close()

    logging.disable(logging.INFO)
    asyncio.run(run())


_pushed = [0.0]  # CPU seconds in the programme's video Fanout.push (the send path), in the child


def _time_pushes(state: BridgeState) -> None:
    fanout = state.rooms[1].programme.video.fanout if 1 in state.rooms else None
    if fanout is None or "push" in vars(fanout):
        return
    push, clock = fanout.push, time.thread_time

    def timed(packet: Any, keyframe: bool, codec: str | None = None) -> None:
        start = clock()
        push(packet, keyframe, codec)
        _pushed[0] += clock() - start

    fanout.push = timed  # type: ignore[method-assign]


def events(state: BridgeState) -> dict[str, int]:
    """What makes a window cost more than another besides the path measured: the direct senders'
    retransmissions and backlogs, the subscribers' resyncs, the datagrams (RTCP, STUN) the
    subscribers' transports received and the RTCP of them taken on the fast path; and the CPU µs
    spent in the send path (the programme video's fan-out)."""
    _time_pushes(state)
    out = {"retransmits": 0, "backlogged": 0, "resyncs": 0, "received": 0, "fast_rtcp": 0,
           "send_us": round(_pushed[0] * 1e6)}
    for peer in list(state.peers.values()):
        for track in peer.tracks:
            out["resyncs"] += track.resyncs
        transports = set()
        for transceiver in peer.pc.getTransceivers():
            direct = direct_sender(transceiver.sender)
            if direct is not None:
                out["retransmits"] += direct.retransmits
                out["backlogged"] += direct.backlogged
                transports.add(transceiver.sender.transport)
        for dtls in transports:
            out["received"] += getattr(dtls, compat.DTLS_RX_COUNTERS[1])
            fast = rtcp_fast.fast_rtcp(dtls)
            if fast is not None:
                out["fast_rtcp"] += fast.packets
    return out


async def share(bridge: BridgeChild, window: float) -> float:
    """The bridge's CPU over ``window`` seconds, µs per second."""
    before = await bridge.ask("events")
    start_cpu, start = await bridge.cpu(), time.monotonic()
    await asyncio.sleep(window)
    cpu = (await bridge.cpu() - start_cpu) / (time.monotonic() - start) * 1e6
    elapsed = time.monotonic() - start
    after = await bridge.ask("events")
    print(f"  window: {cpu / 1e4:.2f} % of a core; per second: "
          f"{({k: round((after[k] - before[k]) / elapsed, 1) for k in after})}", flush=True)
    return cpu


def _fast_rtcp(state: BridgeState, on: bool) -> int:
    """Every subscriber's RTCP on the fast path (on) or aiortc's (off); how many transports."""
    fasts = [f for peer in state.peers.values() if peer.kind == "play"
             for f in {rtcp_fast.fast_rtcp(t.sender.transport) for t in peer.pc.getTransceivers()} if f is not None]
    for fast in fasts:
        fast.protocol.datagram_received = fast.datagram_received if on else fast.original
    return len(fasts)


def _gso(state: BridgeState, on: bool) -> int:
    """Every subscriber's frames in one ``sendmsg`` with UDP segmentation (on) or one ``sendto``
    per packet (off: bridge.udp_batch's default)."""
    batches = [direct.batch for peer in state.peers.values() if peer.kind == "play"
               for t in peer.pc.getTransceivers() if (direct := direct_sender(t.sender)) is not None
               and direct.batch is not None]
    for batch in batches:
        batch.gso = on and udp_batch.GSO_SUPPORTED
    return len(batches)


def _native(state: BridgeState, on: bool) -> int:
    """Every subscriber's frames sent by bridge/native/rtp_send.c (on) or from Python (off)."""
    directs = [direct for peer in state.peers.values() if peer.kind == "play"
               for t in peer.pc.getTransceivers() if (direct := direct_sender(t.sender)) is not None]
    native_send.ENABLED = on and native_send.WHY_NOT == ""
    for direct in directs:
        direct._pair = None  # routed again at its next frame: with the C path or without
    return len(directs)


SWITCHES: dict[str, Callable[[BridgeState, bool], int]] = {"fast-rtcp": _fast_rtcp, "gso": _gso, "native": _native}


async def main(args: argparse.Namespace) -> None:
    bridge = BridgeChild()
    await bridge.start()
    camera = TimedCamera()
    publisher = await whip(bridge.url, 1, token(BRIDGE, "CHAIR", "chair"), camera, audio=False)  # type: ignore[arg-type]
    subs = [PacketSubscriber(None) for _ in range(args.subs)]
    try:
        await asyncio.sleep(3)
        base = await share(bridge, args.window)
        for sub in subs:
            await sub.start(f"{bridge.url}/meetings/1/whep?layer=high", token(BRIDGE, "SUB"))
        await wait_flowing(subs)
        await asyncio.sleep(2)
        if args.breakdown:
            before = await bridge.ask("breakdown")
            start_cpu, started = await bridge.cpu(), time.monotonic()
        loaded = [await share(bridge, args.window)]
        if args.breakdown:
            after, cpu = await bridge.ask("breakdown"), (await bridge.cpu() - start_cpu) * 1e6
            elapsed = time.monotonic() - started
            kinds = sorted(((after[k] - before.get(k, 0)) / elapsed / args.subs, k) for k in after)
            outside = cpu - sum(after[k] - before.get(k, 0) for k in after)
            print(f"bridge CPU per subscriber per second by event-loop callback (µs; all: "
                  f"{cpu / elapsed / args.subs:.0f}, outside callbacks: {outside / elapsed / args.subs:.0f}):")
            for value, kind in reversed(kinds[-16:]):
                print(f"  {value:7.1f}  {kind}")
        results: dict[bool, list[float]] = {True: [], False: []}
        if args.ab:
            for i in range(args.rounds):
                for on in (True, False) if i % 2 == 0 else (False, True):
                    count = await bridge.ask(f"switch {args.ab} {'on' if on else 'off'}")
                    await asyncio.sleep(0.5)
                    results[on].append(await share(bridge, args.window))
            await bridge.ask(f"switch {args.ab} on")
            print(f"{args.ab}: {count} subscribers switched; bridge µs/s per subscriber on "
                  f"{[round((v - base) / args.subs) for v in results[True]]}, off "
                  f"{[round((v - base) / args.subs) for v in results[False]]}", flush=True)
            loaded += results[True]
        per_sub = (statistics.median(loaded) - base) / args.subs
        print(f"bridge: {base / 1e4:.2f} % of a core with the publisher alone, "
              f"{statistics.median(loaded) / 1e4:.2f} % with {args.subs} subscribers", flush=True)
        line = f"RESULT per_sub_us_s={per_sub:.0f}"
        if args.ab:
            saved = (statistics.median(results[False]) - statistics.median(results[True])) / args.subs
            line += f" ab_saved_us_s={saved:.0f}"
        print(line, flush=True)
    finally:
        for sub in subs:
            await sub.close()
        await publisher.pc.close()
        await bridge.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subs", type=int, default=40)
    parser.add_argument("--window", type=float, default=5.0, help="seconds of each CPU measurement")
    parser.add_argument("--ab", choices=sorted(SWITCHES), help="alternate windows with this fast path on and off")
    parser.add_argument("--rounds", type=int, default=6, help="A/B rounds (two windows each)")
    parser.add_argument("--breakdown", action="store_true",
                        help="time every event-loop callback of the bridge by kind (adds its own overhead)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    cli = parser.parse_args()
    if cli.child:
        child()
    else:
        asyncio.run(main(cli))
