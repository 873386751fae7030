"""The bridge's direct send path (bridge.direct_send.DirectSender) with real aiortc peers: one
packetization per frame for all subscribers, lost packets repaired by retransmission (not by a
keyframe), and a backlogged subscriber resynced at the next keyframe instead of buffered."""

from __future__ import annotations

import types
from typing import Any

import pytest
from aiortc import RTCRtpSender

from bridge import aiortc_compat, direct_send, native_send
from bridge.room import BridgeState
from tests.conftest import MEDIA_BRIDGE
from tests.media_util import (
    STEP,
    EncodedVideoTrack,
    Player,
    Publisher,
    close_peers,
    lose_next_rtp,
    token,
    until,
    whep,
    whip,
)

BRIDGE = MEDIA_BRIDGE


def _video_sender(state: BridgeState, player_unit: str) -> RTCRtpSender:
    peer = next(p for p in state.peers.values() if p.kind == "play" and p.unit == player_unit)
    return next(t.sender for t in peer.pc.getTransceivers() if t.kind == "video")


async def _direct(sender: RTCRtpSender) -> direct_send.DirectSender:
    await until(lambda: direct_send.direct_sender(sender) is not None, STEP, "the direct sender to start")
    direct = direct_send.direct_sender(sender)
    assert direct is not None
    return direct


async def _chair_and_player(url: str, camera: EncodedVideoTrack, peers: list[Publisher | Player]) -> Player:
    """The chair publishes ``camera``; site A plays (30 frames decoded). Both go into ``peers``."""
    peers.append(await whip(url, 1, token(BRIDGE, "CHAIR", "chair"), camera))
    player = await whep(url, 1, token(BRIDGE, "A"))
    peers.append(player)
    await player.wait_frames(30)
    return player


async def test_subscribers_share_one_packetization_and_decode(bridge: tuple[str, BridgeState]) -> None:
    url, state = bridge
    camera = EncodedVideoTrack("vp8", 320, 240, bitrate=600_000)
    peers: list[Publisher | Player] = []
    try:
        peers.append(await whip(url, 1, token(BRIDGE, "CHAIR", "chair"), camera))
        players = [await whep(url, 1, token(BRIDGE, f"S{i}")) for i in range(3)]
        peers.extend(players)
        for player in players:
            await player.wait_frames(30)
        senders = [await _direct(_video_sender(state, f"S{i}")) for i in range(3)]
        assert all(p.frames[-1][1:3] == (320, 240) for p in players)
        await until(lambda: all(p.audio_frames > 20 for p in players), STEP, "audio at every player")

        fanout = state.room(1).programme.video.fanout
        source = state.room(1).programme.video.current
        assert source is not None
        before_frames, before_packed = source.frames, fanout.packer.frames
        await until(lambda: source.frames - before_frames >= 15, STEP, "15 more frames from the camera")
        forwarded, packed = source.frames - before_frames, fanout.packer.frames - before_packed
        # once per frame for the whole timeline, not once per subscriber (3 here)
        assert packed <= forwarded + 1, (forwarded, packed)
        if native_send.ENABLED:  # in steady state the timeline's C loop sends to all three
            assert fanout.native is not None and {d for _, d in fanout.native.members} == set(senders)
            assert all(t.native_sender is not None for t in fanout.tracks)
        # every subscriber got its own stream: own SSRC, counters the RTCP sender reports
        assert len({d.ssrc for d in senders}) == 3
        assert all(d.packets >= forwarded for d in senders)
        stats = await _video_sender(state, "S0").getStats()
        outbound = next(s for s in stats.values() if s.type == "outbound-rtp")
        assert outbound.packetsSent == senders[0].packets and outbound.bytesSent == senders[0].octets
    finally:
        await close_peers(*peers)


async def test_a_lost_packet_is_retransmitted_without_a_keyframe(bridge: tuple[str, BridgeState]) -> None:
    url, state = bridge
    camera = EncodedVideoTrack("vp8", 320, 240, bitrate=600_000)
    peers: list[Publisher | Player] = []
    try:
        player = await _chair_and_player(url, camera, peers)
        sender = _video_sender(state, "A")
        direct = await _direct(sender)
        keyframes = camera.keyframes
        track = next(t for t in state.room(1).programme.video.fanout.tracks)
        in_c_loop = native_send.ENABLED  # then the packet is lost from the C loop, and answered from its ring
        assert (track.native_sender is direct) == in_c_loop
        dropped = lose_next_rtp(player.pc, direct.ssrc)
        await until(lambda: dropped() >= 0, STEP, "a video packet to be dropped")
        await until(lambda: direct.retransmits >= 1, STEP, "the subscriber's NACK to be answered")
        count = len(player.frames)
        await player.wait_frames(count + 30)
        assert camera.keyframes == keyframes, "the loss must be repaired by retransmission, not by a new keyframe"
        assert track.resyncs == 0
        assert (track.native_sender is direct) == in_c_loop, "a NACK does not take a subscriber out of the C loop"
    finally:
        await close_peers(*peers)


async def test_a_backlogged_subscriber_resyncs_at_the_next_keyframe(bridge: tuple[str, BridgeState]) -> None:
    url, state = bridge
    camera = EncodedVideoTrack("vp8")
    peers: list[Publisher | Player] = []
    try:
        peers.append(await whip(url, 1, token(BRIDGE, "CHAIR", "chair"), camera))
        slow, other = await whep(url, 1, token(BRIDGE, "SLOW")), await whep(url, 1, token(BRIDGE, "OTHER"))
        peers += [slow, other]
        await slow.wait_frames(20)
        await other.wait_frames(20)
        sender = _video_sender(state, "SLOW")
        direct = await _direct(sender)
        connection = getattr(sender.transport.transport, aiortc_compat.ICE_CONNECTION_ATTR)
        udp: Any = getattr(connection, aiortc_compat.ICE_NOMINATED_ATTR)[1].protocol.transport
        keyframes = camera.keyframes
        # the kernel stops taking this subscriber's datagrams: asyncio would buffer them without bound
        udp.get_write_buffer_size = lambda: direct_send.MAX_SEND_BACKLOG + 1
        await until(lambda: direct.backlogged >= 3, STEP, "the backlog to be seen")
        track = next(t for t in state.room(1).programme.video.fanout.tracks if t.resyncs)
        assert track.waiting_keyframe, "a backlogged subscriber waits for the next keyframe, it is not buffered"
        await other.wait_frames(len(other.frames) + 10)  # the other subscriber is not disturbed
        slow_count = len(slow.frames)  # what was on its way before the backlog has arrived by now
        await other.wait_frames(len(other.frames) + 15)
        assert len(slow.frames) <= slow_count + 1, "nothing is sent to a backlogged subscriber"

        del udp.get_write_buffer_size  # the backlog drains
        await slow.wait_frames(slow_count + 15)
        assert camera.keyframes > keyframes, "the resync starts at a keyframe asked of the camera"
        assert not track.waiting_keyframe
    finally:
        await close_peers(*peers)


async def test_a_pair_that_is_not_plain_udp_goes_through_aiortcs_own_send(
        bridge: tuple[str, BridgeState], monkeypatch: pytest.MonkeyPatch) -> None:
    """A TURN-relayed pair must be sent through aiortc's own asynchronous path (which wraps the
    packets for the TURN server); here every pair is made to look like one."""

    class NotThisProtocol:
        pass

    monkeypatch.setattr(aiortc_compat, "ICE_UDP_PROTOCOL", (types.SimpleNamespace(StunProtocol=NotThisProtocol),
                                                             "StunProtocol"))
    url, state = bridge
    camera = EncodedVideoTrack("vp8", 320, 240, bitrate=600_000)
    peers: list[Publisher | Player] = []
    try:
        player = await _chair_and_player(url, camera, peers)
        direct = await _direct(_video_sender(state, "A"))
        assert direct._udp is None and direct.packets > 0, "sent, and not directly"
        assert all(f[1:3] == (320, 240) for f in player.frames)
        frames = len(player.frames)
        await player.wait_frames(frames + 30)  # keeps playing, in order (the decoder would show garbage otherwise)
    finally:
        await close_peers(*peers)
