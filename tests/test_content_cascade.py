"""Screen sharing ("content", issue #17 item 3) with real aiortc peers through a central and a
provincial bridge: the chair's shared screen reaches a commune behind the province as the same
encoded bytes; a commune holding the floor shares and the centre sees it; a site without the floor
is refused; the share ends for everyone when its sharer loses the floor."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import av
import pytest
from aiohttp.test_utils import TestServer
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from bridge import aiortc_compat
from bridge.app import LINK, STATE, create_app
from bridge.link import BridgeLink
from bridge.room import BridgeConfig, BridgeState
from tests.media_util import (
    KEY,
    STEP,
    EncodedVideoTrack,
    Player,
    Publisher,
    close_peers,
    drain,
    peer_connection,
    post_sdp,
    token,
    until,
    whep,
    whip,
)

CENTRAL, PROVINCE = "TW", "HN"


class RecordedVideoTrack(EncodedVideoTrack):
    """A screen: remembers every encoded frame it sent."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.sent: set[bytes] = set()

    async def recv(self) -> av.Packet:
        packet = await super().recv()
        self.sent.add(bytes(packet))
        return packet


@dataclass
class ContentPlayer:
    """Plays a bridge's content and keeps the encoded frames as they arrive (no decoding)."""

    pc: RTCPeerConnection
    frames: list[bytes] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.pc.close()


async def share(base_url: str, tok: str, video: EncodedVideoTrack) -> Publisher:
    pc = peer_connection()
    try:
        transceiver = pc.addTransceiver(video, direction="sendonly")
        transceiver.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                                         if c.mimeType in (video.mime_type, "video/rtx")])
        aiortc_compat.on_keyframe_request(transceiver.sender, video.request_keyframe)
        await pc.setLocalDescription(await pc.createOffer())
        status, answer, location = await post_sdp(f"{base_url}/meetings/1/whip?content=1", tok,
                                                  pc.localDescription.sdp)
        assert status == 201, answer
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        aiortc_compat.mark_passthrough(pc, kinds=("video",))
    except BaseException:
        await pc.close()
        raise
    return Publisher(pc, video, location)


async def play_content(base_url: str, tok: str) -> ContentPlayer:
    pc = peer_connection()
    player = ContentPlayer(pc)

    def on_frame(frame: object) -> None:
        assert isinstance(frame, av.Packet), "the content player gets encoded frames"
        player.frames.append(bytes(frame))

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        player.tasks.append(asyncio.ensure_future(drain(track, on_frame)))

    try:
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        status, answer, _ = await post_sdp(f"{base_url}/meetings/1/whep?content=1", tok, pc.localDescription.sdp)
        assert status == 201, answer
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        aiortc_compat.mark_passthrough(pc, kinds=("video",))
    except BaseException:
        await player.close()
        raise
    return player


async def _start(config: BridgeConfig) -> tuple[TestServer, str, BridgeState]:
    server = TestServer(create_app(config), host="127.0.0.1", port=0)
    await server.start_server()
    return server, str(server.make_url("")).rstrip("/"), server.app[STATE]


@pytest.fixture
async def bridges() -> AsyncIterator[tuple[str, BridgeState, str, BridgeState, BridgeLink]]:
    central, central_url, central_state = await _start(BridgeConfig(unit=CENTRAL, key=KEY))
    province, province_url, province_state = await _start(
        BridgeConfig(unit=PROVINCE, key=KEY, upstream_url=central_url, upstream_key=KEY))
    try:
        yield central_url, central_state, province_url, province_state, province.app[LINK]
    finally:
        await province.close()
        await central.close()


async def test_content_cascades_untouched_and_floor_rules(
        bridges: tuple[str, BridgeState, str, BridgeState, BridgeLink]) -> None:
    central_url, central, province_url, province, link = bridges
    peers: list[Publisher | Player | ContentPlayer] = []
    try:
        peers.append(await whip(central_url, 1, token(CENTRAL, "CHAIR", "chair"), EncodedVideoTrack("vp8", 160, 120)))
        commune_b = await whep(province_url, 1, token(PROVINCE, "B"))
        peers.append(commune_b)
        await until(lambda: link.uplinks.get(1) is not None, STEP, "the province's cascade to start")
        uplink = link.uplinks[1]
        await commune_b.wait_frames(5)

        # a commune without the floor may not share its screen: refused, nothing changes
        status, answer, _ = await post_sdp(f"{province_url}/meetings/1/whip?content=1", token(PROVINCE, "B"),
                                           await _content_offer())
        assert status == 403, answer
        error = json.loads(answer)["error"]
        assert error["code"] == "floor_required" and "chia sẻ màn hình" in error["message"], error
        assert not province.room(1).content_publishers and province.room(1).programme.content_unit != "B"

        # the chair shares a screen: commune B, behind the province, gets the very same encoded frames
        screen = RecordedVideoTrack("vp8", 320, 240)
        chair_share = await share(central_url, token(CENTRAL, "CHAIR", "chair"), screen)
        peers.append(chair_share)
        seen_b = await play_content(province_url, token(PROVINCE, "B"))
        peers.append(seen_b)
        await until(lambda: len(seen_b.frames) >= 20, STEP, "20 content frames at commune B")
        assert all(frame in screen.sent for frame in seen_b.frames), "content forwarded untouched"
        assert seen_b.frames[0][0] & 1 == 0, "the content starts at a keyframe"
        assert central.room(1).programme.content_unit == "CHAIR"
        # the camera programme goes on beside it
        before = len(commune_b.frames)
        await until(lambda: len(commune_b.frames) > before + 5, STEP, "the programme video goes on")
        assert commune_b.frames[-1][1:3] == (160, 120)

        # commune A of the province takes the floor and shares: the centre sees A's screen
        central.room(1).set_floor("A")
        province.room(1).set_floor("A")
        await uplink.floor_changed()
        screen_a = RecordedVideoTrack("vp8", 176, 144)
        peers.append(await share(province_url, token(PROVINCE, "A"), screen_a))
        at_centre = await play_content(central_url, token(CENTRAL, "CHAIR", "chair"))
        peers.append(at_centre)
        await until(lambda: central.room(1).programme.content_unit == "A", STEP, "A's screen at the centre")
        await until(lambda: any(f in screen_a.sent for f in at_centre.frames), STEP, "A's frames at the centre")
        mark = len(seen_b.frames)
        await until(lambda: len(seen_b.frames) > mark + 5 and seen_b.frames[-1] in screen_a.sent, STEP,
                    "A's screen at commune B")

        # A loses the floor: its share ends everywhere, the chair's screen comes back
        central.room(1).set_floor(None)
        province.room(1).set_floor(None)
        await uplink.floor_changed()
        await until(lambda: "A" not in province.room(1).content_publishers, STEP, "A's share to end at the province")
        await until(lambda: "A" not in central.room(1).programme.contents, STEP, "A's share to end at the centre")
        mark = len(seen_b.frames)
        await until(lambda: len(seen_b.frames) > mark + 5 and seen_b.frames[-1] in screen.sent, STEP,
                    "the chair's screen again at commune B")

        # the chair stops sharing: no content for anyone
        await chair_share.pc.close()
        await until(lambda: central.room(1).programme.content.current is None, STEP, "the content to end")
    finally:
        await close_peers(*[p for p in peers if not isinstance(p, ContentPlayer)])
        for p in peers:
            if isinstance(p, ContentPlayer):
                await p.close()


async def _content_offer() -> str:
    pc = peer_connection()
    try:
        pc.addTransceiver(EncodedVideoTrack("vp8"), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        return pc.localDescription.sdp
    finally:
        await pc.close()
