"""A floor holder whose bridge dies stops being shown: with real aiortc peers, a player that saw
the floor holder sees the chair again once the floor holder's camera sent nothing for a while —
also when the floor holder's last publication was being replaced by one whose client never
completed its handshake (its bridge died just after offering it: the CI failure of
test_floor_holders_bridge_dies_and_comes_back), or completed it and never sent anything (its
bridge died before the site's new publication reached it: that test's next CI failure)."""

from __future__ import annotations

import asyncio

import av
from aiortc import MediaStreamTrack

from bridge.link import HANDSHAKE_SECONDS, STALL_SECONDS
from bridge.room import BridgeState
from tests.conftest import MEDIA_BRIDGE
from tests.media_util import (
    EncodedVideoTrack,
    Player,
    Publisher,
    close_peers,
    offer_sdp,
    post_sdp,
    token,
    until,
    whep,
    whip,
)

CENTRAL = MEDIA_BRIDGE  # the conftest bridge fixture stands for the central bridge
CHAIR_SIZE, A_SIZE = (160, 120), (176, 144)


class Camera(EncodedVideoTrack):
    """A camera that can freeze: its peer connection stays up (no DTLS close, no BYE), it just
    stops sending pictures, as a publisher whose process hangs or whose bridge was killed."""

    def __init__(self, width: int, height: int) -> None:
        super().__init__("vp8", width, height)
        self.frozen = asyncio.Event()

    async def recv(self) -> av.Packet:
        if self.frozen.is_set():
            await asyncio.Event().wait()
        return await super().recv()


class DeadMicrophone(MediaStreamTrack):
    """A microphone whose publisher is connected and sends nothing."""

    kind = "audio"

    async def recv(self) -> av.AudioFrame:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def _shows(player: Player, size: tuple[int, int]) -> bool:
    return bool(player.frames) and player.frames[-1][1:3] == size


async def _on_air(url: str, state: BridgeState) -> tuple[list[Publisher | Player], Camera, Player]:
    """The chair publishes, B plays, A takes the floor and is seen at B."""
    chair = await whip(url, 1, token(CENTRAL, "CHAIR", "chair"), EncodedVideoTrack("vp8", *CHAIR_SIZE))
    b = await whep(url, 1, token(CENTRAL, "B"))
    await until(lambda: _shows(b, CHAIR_SIZE), 10, "B sees the chair")
    state.room(1).set_floor("A")
    camera = Camera(*A_SIZE)
    a = await whip(url, 1, token(CENTRAL, "A"), camera)
    await until(lambda: _shows(b, A_SIZE), 10, "B sees A")
    return [chair, b, a], camera, b


async def _bridge_dies(state: BridgeState, camera: Camera, b: Player, what: str) -> None:
    """A's first camera stops too (its bridge died): B sees the chair within HANDSHAKE_SECONDS
    and a margin, and neither publication of A is left."""
    camera.frozen.set()
    frozen_at = asyncio.get_running_loop().time()
    await until(lambda: _shows(b, CHAIR_SIZE), HANDSHAKE_SECONDS + 5, what)
    took = asyncio.get_running_loop().time() - frozen_at
    assert "A" not in state.room(1).programme.sites, "neither publication of A is left"
    print(f"the chair is back at B {took:.1f} s after A stopped")


async def test_a_frozen_floor_holder_gives_way_to_the_chair(bridge: tuple[str, BridgeState]) -> None:
    url, state = bridge
    peers, camera, b = await _on_air(url, state)
    try:
        camera.frozen.set()
        await until(lambda: _shows(b, CHAIR_SIZE), STALL_SECONDS + 4, "B sees the chair after A's camera froze")
        assert "A" not in state.room(1).programme.sites, "A's stalled publication ended"
    finally:
        await close_peers(*peers)


async def test_a_replacement_that_never_connects_does_not_freeze_the_picture(bridge: tuple[str, BridgeState]) -> None:
    url, state = bridge
    peers, camera, b = await _on_air(url, state)
    try:
        # A publishes again, and its client dies before the handshake: then its camera stops too
        offer = await offer_sdp(("video", "audio"))
        status, _, _ = await post_sdp(f"{url}/meetings/1/whip", token(CENTRAL, "A"), offer)
        assert status == 201
        await _bridge_dies(state, camera, b, "B sees the chair after A's bridge died mid-replacement")
    finally:
        await close_peers(*peers)


async def test_a_replacement_that_connects_and_sends_nothing_does_not_freeze_the_picture(
        bridge: tuple[str, BridgeState]) -> None:
    url, state = bridge
    peers, camera, b = await _on_air(url, state)
    try:
        # A publishes again; the new publication's connection comes up, then its bridge dies before
        # anything was sent on it, and A's first camera stops with it
        idle = Camera(*A_SIZE)
        idle.frozen.set()
        replacement = await whip(url, 1, token(CENTRAL, "A"), idle, audio=DeadMicrophone())
        peers.append(replacement)
        await until(lambda: replacement.pc.connectionState == "connected", 10, "A's replacement connects")
        await _bridge_dies(state, camera, b,
                           "B sees the chair after A's bridge died with a connected, silent replacement")
    finally:
        await close_peers(*peers)
