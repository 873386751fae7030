"""The bridge's control channel against the real server: it follows the floor, puts the sites it
serves in the roll call, reports their health, and after the server drops it, reconnects and
restores all of it by itself."""

from __future__ import annotations

import asyncio
from typing import Any

from bridge.control import ControlChannel
from server.state import DB, HUB
from sessions.store import live as live_store
from tests.conftest import LiveServer
from tests.live_util import WsClient, schedule, set_state
from tests.media_browser_util import bridge_token


async def until(predicate: Any, within: float = 5.0) -> None:
    async def wait() -> None:
        while not predicate():  # noqa: ASYNC110 - the state changes in callbacks, not behind an event
            await asyncio.sleep(0.02)
    await asyncio.wait_for(wait(), within)


async def test_control_channel_follows_the_floor_and_survives_a_drop(live: LiveServer) -> None:
    chair = await live.login("chutri")
    mid = await schedule(chair)
    await set_state(chair, mid, "rehearsal", "live")
    seen: list[tuple[int, str, str | None]] = []
    channel = ControlChannel(live.url, await bridge_token(live, "25"),
                             on_meeting=lambda m, state, floor: seen.append((m, state, floor)))
    console = await WsClient.open(await live.login("phutho"))
    try:
        channel.start()
        await asyncio.wait_for(channel.connected.wait(), 5)
        await console.request({"type": "subscribe", "topic": f"rollcall:{mid}:25"})
        await channel.site_connected(mid, "08707")
        await console.until(lambda: (console.seat("08707") or {}).get("online") == 1)
        await until(lambda: (mid, "live", None) in seen)

        await chair.api("POST", f"/api/meetings/{mid}/floor", json={"action": "grant", "unit": "08707"})
        await until(lambda: seen[-1] == (mid, "live", "08707"))
        await channel.stats(mid, [{"unit": "08707", "rtt_ms": 12.0, "loss": 0.0, "kbps": 900, "fps": 30}])
        assert (await console.until(lambda: console.health.get("08707")))["level"] == "good"

        # The server drops every socket (as a restart would): the channel comes back by itself and
        # the site is present again.
        await live.app[HUB].close_all()
        await console.close()
        await until(lambda: not channel.connected.is_set(), within=5)
        await until(lambda: channel.connected.is_set(), within=10)
        console = await WsClient.open(await live.login("phutho"))
        await console.request({"type": "subscribe", "topic": f"rollcall:{mid}:25"})
        await console.until(lambda: (console.seat("08707") or {}).get("online") == 1, within=10)
        async with live.app[DB]() as db:
            rows = await live_store.attendance_rows(db, mid)
        spans = next(r["intervals"] for r in rows if r["code"] == "08707")
        assert len(spans) == 2 and spans[0][1] is not None and spans[1][1] is None  # the drop is on record

        await channel.site_disconnected(mid, "08707")
        await console.until(lambda: (console.seat("08707") or {}).get("online") == 0)
        # A site outside the bridge's province is refused, and nothing else breaks.
        await channel.site_connected(mid, "00070")
        await until(lambda: any(e.get("code") == "out_of_scope" for e in channel.errors))
        await chair.api("POST", f"/api/meetings/{mid}/floor", json={"action": "revoke"})
        await until(lambda: seen[-1] == (mid, "live", None))
    finally:
        await channel.close()
        await console.close()
