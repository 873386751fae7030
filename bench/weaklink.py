"""A commune on a weak link (issue #16): how soon its player moves to the low rendition when its
link falls to 300 kbit/s with 2 % loss and 40 ms of delay, how soon it is back on the high one when
the link clears, how much its picture froze, and what each rendition weighs as received.

The same parts as tests/test_weak_link.py, each a real process (tests/weak_link_util.py): a
pass-through bridge, the chair publishing two renditions (640×480 ≈700 kbit/s and 320×240
≈140 kbit/s VP8, 15 fps), a subscriber on a clean path and one inside a network namespace behind a
veth shaped by tests/netns_util.py (tbf rate, iptables random loss, the delay from a userspace
NFQUEUE delayer as the kernel has no netem; the token bucket's queue adds what a saturated link
has). Both subscribers are aiortc players that decode; the figures are what their viewers saw.

- ``switch_down_s``: from the limit applied to the first low-size frame decoded behind it;
- ``switch_up_s``: from the limit lifted to the first high-size frame decoded again (the bridge
  waits for clear seconds before it tries, longer after each failed try: bridge/adapt.py);
- ``freeze_ms_per_min``: the constrained player's frozen time (gaps between decoded frames over
  max(3 × the mean interval, the mean + 150 ms), as WebRTC's totalFreezesDuration) per minute, from
  its first frame to the end of the run;
- ``low_kbps``: video received by the constrained player while it showed the low size (after 2 s
  there), retransmissions included; ``high_kbps``: video received by the clean player meanwhile.

Needs root (network namespaces, tc, iptables). Usage: ``.venv/bin/python bench/weaklink.py
[--hold 30] [--up-within 120]``. Ends with one line ``RESULT switch_down_s=… switch_up_s=…
freeze_ms_per_min=… low_kbps=… high_kbps=…`` (a figure that could not be measured is ``nan``).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.media_util import token  # noqa: E402
from tests.netns_util import TOOLS, WeakLink  # noqa: E402
from tests.weak_link_util import BRIDGE_UNIT, HIGH, LOW, Child, spawn, stop_all  # noqa: E402


async def first_size(child: Child, size: tuple[int, int], since: float, within: float) -> float | None:
    """When ``child`` first decoded a frame of ``size`` after ``since``; None if not within ``within`` s."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        at = [s["t"] for s in child.sizes if s["t"] >= since and (s["w"], s["h"]) == size]
        if at:
            return float(at[0])
        await asyncio.sleep(0.1)
    return None


async def playing(child: Child, size: tuple[int, int], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        recent = child.reports[-2:]
        if len(recent) == 2 and (recent[-1]["w"], recent[-1]["h"]) == size \
                and recent[-1]["frames"] >= recent[0]["frames"] + 5:
            return
        await asyncio.sleep(0.2)
    raise SystemExit(f"{child.name} did not play {size} within {within:.0f} s:\n{child.summary()}")


def kbps(reports: list[dict[str, Any]]) -> float:
    if len(reports) < 2:
        return math.nan
    return (reports[-1]["video_bytes"] - reports[0]["video_bytes"]) * 8 / 1000 / (reports[-1]["t"] - reports[0]["t"])


def low_stretch(weak: Child, start: float, end: float) -> list[dict[str, Any]]:
    """The longest run of consecutive reports in [start, end] at the low size, its first 2 s left out."""
    best: list[dict[str, Any]] = []
    run: list[dict[str, Any]] = []
    for report in (r for r in weak.reports if start <= r["t"] <= end):
        if (report["w"], report["h"]) == LOW:
            run.append(report)
            best = max(best, run, key=len)
        else:
            run = []
    return [r for r in best if r["t"] >= best[0]["t"] + 2] if best else []


async def run(args: argparse.Namespace, work: Path) -> None:
    children: list[Child] = []
    with WeakLink("hn-bench", index=43) as link:
        try:
            bridge = await spawn("bridge", ["bridge", BRIDGE_UNIT], work)
            children.append(bridge)
            port = (await bridge.answer())["port"]
            chair = await spawn("publisher", ["publish", f"http://127.0.0.1:{port}",
                                              token(BRIDGE_UNIT, "CHAIR", "chair")], work)
            children.append(chair)
            clean = await spawn("clean", ["subscribe", f"http://127.0.0.1:{port}/meetings/1/whep",
                                          token(BRIDGE_UNIT, "SACH")], work)
            children.append(clean)
            weak = await spawn("weak", ["subscribe", f"http://{link.host_ip}:{port}/meetings/1/whep",
                                        token(BRIDGE_UNIT, "YEU")], work, prefix=link.command([]))
            children.append(weak)
            print(f"bridge on port {port}; the constrained player in namespace {link.name} ({link.ns_ip})", flush=True)
            await playing(clean, HIGH)
            await playing(weak, HIGH)
            await asyncio.sleep(args.warm)

            limited, limited_wall = time.monotonic(), time.time()
            link.shape(rate_kbit=300, loss_pct=2, delay_ms=40)
            print(f"limit applied: 300 kbit/s, 2 % loss, 40 ms delay at {limited:.1f}", flush=True)
            went_low = await first_size(weak, LOW, limited, args.hold)
            await asyncio.sleep(max(0.0, limited + args.hold - time.monotonic()))
            hold_end = time.monotonic()

            lifted = time.monotonic()
            link.shape(rate_kbit=None)
            print(f"limit lifted at {lifted:.1f}", flush=True)
            went_up = await first_size(weak, HIGH, lifted, args.up_within)
            await asyncio.sleep(args.warm)

            bridge.ask("counts")
            counts = (await bridge.answer())["counts"]
        finally:
            await stop_all(children)
    for child in (chair, clean, weak):  # times from the limit applied
        print(f"---- {child.name} ----\n{child.summary(last=args.show, origin=limited)}", flush=True)
    sent = chair.reports[-1]["t"] - chair.reports[0]["t"] if len(chair.reports) > 1 else math.nan
    for layer in ("high", "low"):
        rate = (chair.reports[-1][f"{layer}_bytes"] - chair.reports[0][f"{layer}_bytes"]) * 8 / 1000 / sent
        print(f"publisher sent {layer}: {rate:.0f} kbit/s, keyframes {chair.reports[-1][f'{layer}_keyframes']}")
    print(f"bridge codec use (must be 0): {counts}")
    decisions = [line for line in bridge.tail(400).splitlines() if " -> " in line or "probing" in line]
    print("the bridge's decisions (s after the limit):\n" + "\n".join(f"{_after(line, limited_wall)} {line}"
                                                                     for line in decisions))
    clean_sizes = sorted({(s["w"], s["h"]) for s in clean.sizes})
    clean_min = (clean.reports[-1]["t"] - clean.reports[0]["t"]) / 60
    print(f"clean player: sizes {clean_sizes}, frozen {clean.latest['freeze_ms'] / clean_min:.0f} ms per min "
          f"(the camera's own late frames: high {chair.latest['high_freeze_ms'] / (sent / 60):.0f}, low "
          f"{chair.latest['low_freeze_ms'] / (sent / 60):.0f} ms per min; a crowded machine freezes every viewer)")

    watched = [r for r in weak.reports if r["frames"] > 0]
    minutes = (watched[-1]["t"] - watched[0]["t"]) / 60 if len(watched) > 1 else math.nan
    stretch = low_stretch(weak, limited, hold_end)
    clean_hold = [r for r in clean.reports if limited <= r["t"] <= hold_end]
    down = went_low - limited if went_low is not None else math.nan
    up = went_up - lifted if went_up is not None else math.nan
    print(f"constrained player's freezes (ended s after the limit: ms; lifted at {lifted - limited:.1f} s): "
          f"{[(round(f['t'] - limited, 1), f['ms']) for f in weak.freezes]}", flush=True)
    print(f"constrained player: low after {down:.1f} s, high again {up:.1f} s after the lift, "
          f"frozen {weak.latest['freeze_ms']} ms over {minutes:.2f} min, "
          f"low for {stretch[-1]['t'] - stretch[0]['t'] if stretch else 0:.0f} s in a row", flush=True)
    print(f"RESULT switch_down_s={down:.1f} switch_up_s={up:.1f} "
          f"freeze_ms_per_min={weak.latest['freeze_ms'] / minutes:.0f} low_kbps={kbps(stretch):.0f} "
          f"high_kbps={kbps(clean_hold):.0f}", flush=True)


def _after(line: str, origin: float) -> str:
    """A log line's time (its local-time stamp, to the millisecond) as seconds after ``origin``."""
    try:
        stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    except ValueError:
        return "?"
    return f"{stamp - origin:+.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hold", type=float, default=30.0, help="seconds the limit stays on")
    parser.add_argument("--up-within", type=float, default=120.0, help="seconds to wait for the way back up")
    parser.add_argument("--show", type=int, default=8, help="last reports of each process shown")
    parser.add_argument("--warm", type=float, default=5.0, help="seconds played before the limit and after the lift")
    args = parser.parse_args()
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing or os.geteuid() != 0:
        raise SystemExit(f"bench/weaklink.py needs root and {', '.join(TOOLS)} (missing: {missing or 'root'})")
    work = Path(tempfile.mkdtemp(prefix="hoinghi-weaklink-"))
    print(f"logs in {work}", flush=True)
    asyncio.run(run(args, work))


if __name__ == "__main__":
    main()
