"""One video codec per meeting, decided by what is actually published, at every tier of the cascade.

A chair publishing H.264 (as OBS always does) or VP8 is seen at the central bridge and by a commune
behind its provincial bridge, at the size it sends; a player answered before the chair's video
arrived is ended and, playing again, gets the meeting's codec; a publication that never got past
DTLS pins nothing; a packet is never forwarded under another codec's label."""

from __future__ import annotations

import fractions
import json
from collections.abc import AsyncIterator

import av
import pytest
from aiohttp.test_utils import TestServer

from bridge.app import LINK, STATE, create_app
from bridge.link import BridgeLink
from bridge.relay import Source
from bridge.room import BridgeConfig, BridgeState
from tests.media_util import (
    KEY,
    STEP,
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

CENTRAL, PROVINCE = "TW", "HN"
SIZE = (176, 144)
Bridges = tuple[str, BridgeState, str, BridgeState, BridgeLink]


async def _start(config: BridgeConfig) -> tuple[TestServer, str, BridgeState]:
    server = TestServer(create_app(config), host="127.0.0.1", port=0)
    await server.start_server()
    return server, str(server.make_url("")).rstrip("/"), server.app[STATE]


@pytest.fixture
async def bridges() -> AsyncIterator[Bridges]:
    """The centre and a province whose own link runs its cascade (as in production)."""
    central, central_url, central_state = await _start(BridgeConfig(unit=CENTRAL, key=KEY))
    province, province_url, province_state = await _start(
        BridgeConfig(unit=PROVINCE, key=KEY, upstream_url=central_url, upstream_key=KEY))
    try:
        yield central_url, central_state, province_url, province_state, province.app[LINK]
    finally:
        await province.close()
        await central.close()


def video_codec(answer: str) -> str:
    """The one video codec an answer carries (RTX aside)."""
    section = answer.split("m=video", 1)[1].split("m=audio", 1)[0]
    names = {line.split(" ", 1)[1].split("/")[0] for line in section.split("\r\n") if line.startswith("a=rtpmap:")}
    names.discard("rtx")
    assert len(names) == 1, names
    return names.pop()


def meeting_codec(state: BridgeState) -> str | None:
    codec = state.room(1).video_codec
    return codec.mimeType if codec is not None else None


async def shows(player: Player, size: tuple[int, int], frames: int = 15) -> None:
    """``player`` decodes ``frames`` more frames, the last of them at ``size``."""
    count = len(player.frames)
    await player.wait_frames(count + frames)
    assert player.frames[-1][1:3] == size


@pytest.mark.parametrize("codec", ["h264", "vp8"])
async def test_the_chairs_codec_plays_at_every_tier(bridges: Bridges, codec: str) -> None:
    central_url, central, province_url, province, link = bridges
    name = {"h264": "H264", "vp8": "VP8"}[codec]
    peers: list[Publisher | Player] = []
    try:
        peers.append(await whip(central_url, 1, token(CENTRAL, "CHAIR", "chair"), EncodedVideoTrack(codec, *SIZE)))
        await until(lambda: central.room(1).video_codec is not None, STEP, "the chair's video to pin the codec")
        # both players offer VP8 first, then H.264 (aiortc's order): the meeting's codec decides
        at_centre = await whep(central_url, 1, token(CENTRAL, "X"))
        commune = await whep(province_url, 1, token(PROVINCE, "B"))
        peers += [at_centre, commune]
        assert video_codec(at_centre.answer) == name
        await shows(at_centre, SIZE)
        await shows(commune, SIZE)
        assert video_codec(commune.answer) == name, "the province answers with the upstream's codec"
        assert meeting_codec(province) == f"video/{name}"
        assert link.uplinks[1].play is not None
    finally:
        await close_peers(*peers)


@pytest.mark.parametrize("codec", ["h264", "vp8"])
async def test_a_commune_that_played_before_the_chair_published_gets_the_meetings_codec(
        bridges: Bridges, codec: str) -> None:
    """The commune plays at its province before anything is published: the province plays the
    centre, both answer with the players' first codec (VP8) without pinning. The chair's H.264
    arriving at the centre pins it there; the province's programme (VP8) ends, the province plays
    again, takes H.264 from the upstream and ends its commune, which plays again (as pages do) and
    decodes. A chair sending VP8 disturbs nobody."""
    central_url, central, province_url, province, link = bridges
    name = {"h264": "H264", "vp8": "VP8"}[codec]
    peers: list[Publisher | Player] = []
    try:
        early = await whep(province_url, 1, token(PROVINCE, "B"))
        peers.append(early)
        assert video_codec(early.answer) == "VP8"
        await until(lambda: link.uplinks.get(1) is not None, STEP, "the province's cascade to start")
        assert central.room(1).video_codec is None, "a player's offer pins nothing"

        peers.append(await whip(central_url, 1, token(CENTRAL, "CHAIR", "chair"), EncodedVideoTrack(codec, *SIZE)))
        await until(lambda: meeting_codec(province) == f"video/{name}", STEP,
                    "the province to take the upstream's codec")
        if codec == "vp8":
            await shows(early, SIZE)
            assert early.pc.connectionState == "connected", "a player already on the meeting's codec stays"
            return
        await until(lambda: early.pc.connectionState == "closed", STEP, "the VP8 commune to be ended")
        again = await whep(province_url, 1, token(PROVINCE, "B"))
        peers.append(again)
        assert video_codec(again.answer) == name
        await shows(again, SIZE)

        # a player that cannot take the meeting's codec is refused, naming it
        vp8_only = (await offer_sdp(("video", "audio"), "recvonly")).replace("H264/90000", "VP9/90000")
        status, body, _ = await post_sdp(f"{province_url}/meetings/1/whep", token(PROVINCE, "C"), vp8_only)
        assert status == 422, body
        error = json.loads(body)["error"]
        assert error["code"] == "codec_unsupported" and "H264" in error["message"]
        await shows(again, SIZE)  # and disturbs nobody
    finally:
        await close_peers(*peers)


async def test_a_publication_that_never_connects_pins_nothing(bridge: tuple[str, BridgeState]) -> None:
    """An H.264 publication whose client never completes ICE/DTLS is answered and pins nothing: the
    chair's VP8 that then arrives is the meeting's codec, and a player gets it."""
    url, state = bridge
    peers: list[Publisher | Player] = []
    try:
        h264_offer = (await offer_sdp(("video", "audio"), "sendonly")).replace("VP8/90000", "VP9/90000")
        status, answer, _ = await post_sdp(f"{url}/meetings/1/whip", token(state.config.unit, "CHAIR", "chair"),
                                           h264_offer)
        assert status == 201 and video_codec(answer) == "H264"
        assert state.room(1).video_codec is None
        # the chair publishes again, for real, in VP8: it replaces the stalled publication
        peers.append(await whip(url, 1, token(state.config.unit, "CHAIR", "chair"), EncodedVideoTrack("vp8", *SIZE)))
        await until(lambda: state.room(1).video_codec is not None, STEP, "the chair's video to pin the codec")
        assert meeting_codec(state) == "video/VP8"
        player = await whep(url, 1, token(state.config.unit, "B"))
        peers.append(player)
        assert video_codec(player.answer) == "VP8"
        await shows(player, SIZE)
    finally:
        await close_peers(*peers)


def test_a_subscriber_never_gets_another_codecs_packets() -> None:
    """The guard in the relay: a subscriber that negotiated VP8 gets nothing from an H.264 source,
    one that negotiated H.264 gets it all."""
    source = Source("video", "video/H264")
    vp8, h264 = source.fanout.subscribe(), source.fanout.subscribe()
    vp8.codec, h264.codec = "video/vp8", "video/h264"
    for track in (vp8, h264):
        track.start()
    idr = av.Packet(b"\x00\x00\x00\x01\x67\x42\x00\x00\x00\x01\x68\xce\x00\x00\x01\x65\x88")
    idr.pts, idr.time_base = 0, fractions.Fraction(1, 90000)
    source.feed(idr)
    assert h264.packets_in == 1
    assert vp8.packets_in == 0 and vp8.packets_wrong_codec == 1
