"""Benchmark of a pushed slide (issue #14): the chair puts a slide on every screen; how long until
each site's websocket has the ``slide`` event.

    python bench/slide_push.py                 # 3,355 sites (34 provinces + 3,321 communes)
    python bench/slide_push.py --sites 500     # a smaller synthetic tree

The same set-up as bench/live.py (whose pieces it reuses): a fresh SQLite database with a synthetic
tree and a machine token per site, the server as its own process, every site connected to ``/ws``
with ``meeting:<id>`` subscribed and joined. Then ``--rounds`` times the chair's console sends
``show_slide`` (the national slide) or ``own_slides`` (alternately) over its websocket; every site
notes when the ``slide`` event arrives. **slide_push_p50_ms** / **slide_push_p99_ms** are
percentiles over every (round, site) arrival of the time from sending the action to that arrival;
**slide_push_last_p99_ms** the p99 over rounds of the last site's. Target: every site within 1 s.
The last line:

    RESULT sites=… slide_push_p50_ms=… slide_push_p99_ms=… slide_push_last_p99_ms=…
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.live import (
    SECRET_KEY,
    BenchError,
    Chair,
    Console,
    Fanout,
    Handles,
    ServerProcess,
    client_gc_paused,
    connect_all,
    free_port,
    log,
    percentile,
    prepare,
    raise_fd_limit,
    tree_spec,
)
from server.settings import load_settings


async def push_rounds(chair: Chair, meeting_id: int, n: int, state: Fanout,
                      args: argparse.Namespace) -> tuple[list[float], list[float]]:
    """Every (round, site) latency, and each round's last-site latency, in seconds."""
    every: list[float] = []
    lasts: list[float] = []
    async with chair.http.ws_connect("/ws", origin=chair.url) as ws:
        for rnd in range(1, args.rounds + 1):
            state.arrivals, state.expected, state.round = [], n, rnd
            state.done = asyncio.Event()
            state.pattern = '"kind":"slide"'
            action = "show_slide" if rnd % 2 else "own_slides"
            sent = time.perf_counter()
            await ws.send_str(json.dumps({"type": "action", "meeting": meeting_id, "action": action, "id": rnd}))
            try:
                await asyncio.wait_for(state.done.wait(), args.round_timeout)
            except TimeoutError:
                raise BenchError(f"round {rnd}: {len(state.arrivals)}/{n} sites got the slide event") from None
            answer = json.loads((await ws.receive()).data)
            if answer.get("type") != "result":
                raise BenchError(f"round {rnd}: {answer}")
            state.pattern = None
            times = [t - sent for t in state.arrivals]
            every += times
            lasts.append(max(times))
            log(f"  round {rnd:>3} ({action}): last site after {max(times) * 1000:.1f} ms")
            await asyncio.sleep(args.pause)
    return every, lasts


async def run(args: argparse.Namespace) -> str:
    password = secrets.token_urlsafe(12)
    with tempfile.TemporaryDirectory(prefix="hoinghi-bench-slide-") as tmp:
        var_dir = Path(tmp) / "var"
        settings = load_settings(environ={}, var_dir=str(var_dir), secret_key=SECRET_KEY, log_level="WARNING")
        log(f"Preparing data in {var_dir} (SQLite)")
        sites = await prepare(settings, tree_spec(args.sites), password)
        server = ServerProcess(var_dir, free_port(), None)
        handles = Handles()
        try:
            await server.start()
            chair = handles.chair = Chair(server.url)
            await chair.login(password)
            meeting_id = await chair.schedule_live()
            console = Console()
            handles.console_task = asyncio.create_task(console.run(chair, meeting_id))
            await asyncio.wait_for(console.ready.wait(), 30)
            http = handles.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, limit_per_host=0))
            state = Fanout()
            with client_gc_paused():
                connect_s = await connect_all(server, chair, console, meeting_id, sites, http, state, args,
                                              handles.site_tasks)
                log(f"All {len(sites)} sites connected after {connect_s:.2f} s; {args.rounds} pushes")
                every, lasts = await push_rounds(chair, meeting_id, len(sites), state, args)
        except BenchError as exc:
            raise BenchError(f"{exc}\n--- server log, last lines ---\n{server.log_tail()}") from None
        finally:
            await handles.close()
            await server.stop(60.0)
    ms = [x * 1000 for x in every]
    last_ms = [x * 1000 for x in lasts]
    return (f"RESULT sites={len(sites)} slide_push_p50_ms={percentile(ms, 50):.1f} "
            f"slide_push_p99_ms={percentile(ms, 99):.1f} slide_push_last_p99_ms={percentile(last_ms, 99):.1f}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sites", type=int, default=3355, help="sites (default 3355)")
    parser.add_argument("--rounds", type=int, default=20, help="pushes measured (default 20)")
    parser.add_argument("--concurrency", type=int, default=100, help="handshakes in flight (default 100)")
    parser.add_argument("--connect-timeout", type=float, default=300.0, help="give up connecting after (s)")
    parser.add_argument("--site-timeout", type=float, default=120.0, help="one site's connect+join limit (s)")
    parser.add_argument("--round-timeout", type=float, default=15.0, help="one push round's limit (s)")
    parser.add_argument("--pause", type=float, default=0.3, help="pause between pushes (s)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.concurrency < 1:
        parser.error("--rounds and --concurrency must be positive")
    if raise_fd_limit(args.sites + 1024) < args.sites + 256:
        parser.error("open-file limit too low")
    return args


async def main(args: argparse.Namespace) -> int:
    try:
        line = await run(args)
    except BenchError as exc:
        print(f"FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    log(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(parse_args())))
