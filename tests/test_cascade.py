"""Cascade central → province → commune with real aiortc peers: the commune plays the chair
through its province's bridge; a commune of the province takes the floor and is seen both at
the province and at the centre; the floor goes back to the chair."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer

from bridge.app import LINK, STATE, create_app
from bridge.link import BridgeLink
from bridge.room import BridgeConfig, BridgeState
from tests.media_util import KEY, STEP, EncodedVideoTrack, Player, Publisher, token, until, whep, whip

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
        BridgeConfig(unit=PROVINCE, key=KEY, upstream_url=central_url))
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
