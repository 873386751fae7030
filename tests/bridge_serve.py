"""The loop of a bridge run in its own process by a test (tests/bridge_process.py,
tests/recording_bridge.py): serve on a free port, print its URL, answer each ``counts`` line on
stdin with one JSON line of what the process counted, stop when stdin closes."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

from aiohttp import web

from bridge.app import create_app
from bridge.room import BridgeConfig


async def serve(config: BridgeConfig, counts: Callable[[], dict[str, Any]]) -> None:
    runner = web.AppRunner(create_app(config))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"http://127.0.0.1:{port}", flush=True)
    try:
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                break
            if line.strip() == "counts":
                print(json.dumps(counts()), flush=True)
    finally:
        await runner.cleanup()
