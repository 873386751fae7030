"""Cascade central → province → commune with real aiortc peers: the commune plays the chair
through its province's bridge; a commune of the province takes the floor and is seen both at
the province and at the centre; the floor goes back to the chair."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

import bridge
from bridge.app import LINK, STATE, create_app
from bridge.cascade import RETIRE_AFTER
from bridge.link import BridgeLink
from bridge.peers import REPLACE_WAIT
from bridge.room import BridgeConfig, BridgeState
from tests.media_util import (
    KEY,
    STEP,
    EncodedVideoTrack,
    Player,
    Publisher,
    offer_sdp,
    post_sdp,
    token,
    until,
    whep,
    whip,
)

CENTRAL, PROVINCE = "TW", "HN"


async def _start(config: BridgeConfig) -> tuple[TestServer, str, BridgeState]:
    server = TestServer(create_app(config), host="127.0.0.1", port=0)
    await server.start_server()
    return server, str(server.make_url("")).rstrip("/"), server.app[STATE]


@pytest.fixture
async def bridges() -> AsyncIterator[tuple[str, BridgeState, str, BridgeState, BridgeLink]]:
    """The centre and a province whose own link runs its cascade (as in production)."""
    central, central_url, central_state = await _start(BridgeConfig(unit=CENTRAL, key=KEY))
    province, province_url, province_state = await _start(
        BridgeConfig(unit=PROVINCE, key=KEY, upstream_url=central_url, upstream_key=KEY))
    try:
        yield central_url, central_state, province_url, province_state, province.app[LINK]
    finally:
        await province.close()
        await central.close()


def _shows(player: Player, size: tuple[int, int]) -> bool:
    return bool(player.frames) and player.frames[-1][1:3] == size


async def test_central_province_commune(bridges: tuple[str, BridgeState, str, BridgeState, BridgeLink]) -> None:
    central_url, central, province_url, province, link = bridges
    peers: list[Publisher | Player] = []
    try:
        peers.append(await whip(central_url, 1, token(CENTRAL, "CHAIR", "chair"), EncodedVideoTrack("vp8", 160, 120)))
        # a commune plays at its province: the province bridge starts playing the centre by itself
        commune_b = await whep(province_url, 1, token(PROVINCE, "B"))
        await until(lambda: link.uplinks.get(1) is not None, STEP, "the province's cascade to start")
        uplink = link.uplinks[1]
        at_centre = await whep(central_url, 1, token(CENTRAL, "CHAIR", "chair"))
        peers += [commune_b, at_centre]
        await commune_b.wait_frames(15)
        assert _shows(commune_b, (160, 120)), "the commune sees the chair through its province"

        # the server gives the floor to commune A of the province (every bridge is told)
        central.room(1).set_floor("A")
        province.room(1).set_floor("A")
        peers.append(await whip(province_url, 1, token(PROVINCE, "A"), EncodedVideoTrack("vp8", 176, 144)))
        await uplink.floor_changed()
        await until(lambda: _shows(commune_b, (176, 144)), STEP, "commune A at commune B (province bridge)")
        await until(lambda: _shows(at_centre, (176, 144)), STEP, "commune A at the centre (published upstream)")
        assert central.room(1).programme.on_air == "A"

        # the floor goes back to the chair
        central.room(1).set_floor(None)
        province.room(1).set_floor(None)
        await uplink.floor_changed()
        await until(lambda: _shows(commune_b, (160, 120)), STEP, "the chair again at commune B")
        await until(lambda: _shows(at_centre, (160, 120)), STEP, "the chair again at the centre")
        assert "A" not in central.room(1).programme.sites
    finally:
        for peer in peers:
            if isinstance(peer, Player):
                await peer.close()
            else:
                await peer.pc.close()


async def test_shutdown_cancels_and_awaits_what_the_bridges_left_running() -> None:
    """Background work at both tiers when the bridges stop — a replaced publication waiting for
    its successor's media, a retired upstream publication waiting to end, the cascade itself —
    is cancelled and awaited: the bridges stop at once and leave no task behind."""
    central, central_url, central_state = await _start(BridgeConfig(unit=CENTRAL, key=KEY))
    province, province_url, province_state = await _start(
        BridgeConfig(unit=PROVINCE, key=KEY, upstream_url=central_url, upstream_key=KEY))
    link = province.app[LINK]
    peers: list[Publisher | Player] = []
    try:
        peers.append(await whip(central_url, 1, token(CENTRAL, "CHAIR", "chair"), EncodedVideoTrack("vp8")))
        peers.append(await whep(province_url, 1, token(PROVINCE, "B")))
        await until(lambda: link.uplinks.get(1) is not None, STEP, "the province's cascade to start")
        uplink = link.uplinks[1]
        central_state.room(1).set_floor("A")
        province_state.room(1).set_floor("A")
        peers.append(await whip(province_url, 1, token(PROVINCE, "A"), EncodedVideoTrack("vp8")))
        await until(lambda: uplink.published_unit == "A", STEP, "A published upstream")
        # A publishes again (camera added): the province replaces it, publishes the new one up and
        # retires the old upstream publication later; the centre replaces it in turn
        peers.append(await whip(province_url, 1, token(PROVINCE, "A"), EncodedVideoTrack("vp8")))
        await until(lambda: bool(uplink._retiring), STEP, "the old upstream publication to be retiring")
        # a publication whose client never completes its handshake: its predecessor waits for it
        stalled = await offer_sdp(("audio",))
        status, _, _ = await post_sdp(f"{province_url}/meetings/1/whip", token(PROVINCE, "A"), stalled)
        assert status == 201
        assert province_state._tasks, "a replacement is waiting for media"
    finally:
        for peer in peers:
            await (peer.close() if isinstance(peer, Player) else peer.pc.close())
        started = asyncio.get_running_loop().time()
        await province.close()
        await central.close()
        stopped_in = asyncio.get_running_loop().time() - started
    assert stopped_in < min(RETIRE_AFTER, REPLACE_WAIT), f"the bridges waited {stopped_in:.1f} s to stop"
    assert not province_state.peers and not central_state.peers
    assert not province_state._tasks and not province_state._ending and not central_state._tasks
    assert not link._starting and not link.uplinks and not uplink._retiring
    left = _bridge_tasks()
    assert not left, f"tasks still running the bridge's code after shutdown: {left}"


def _bridge_tasks() -> list[asyncio.Task[Any]]:
    """Tasks still running the bridge's own code. (aiortc's and aioice's own tasks are left out: a
    peer connection closed while its ICE checks complete can leave aioice's consent check running.)"""
    package = str(Path(bridge.__file__).parent)
    return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()
            and getattr(getattr(t.get_coro(), "cr_code", None), "co_filename", "").startswith(package)]
