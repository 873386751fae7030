"""A subscriber's RTCP handled where it arrives (bridge.rtcp_fast), with real aiortc peers: the
reports reach the adaptation and aiortc's own statistics, a NACK is answered by a retransmission
and a PLI becomes a keyframe request, all without aiortc's receive loop; and where the fast path
is not taken (turned off, or aiortc's internals not as named) aiortc's own path still does all of it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiortc import RTCDtlsTransport, RTCRtpSender
from aiortc import rtp as aiortc_rtp

from bridge import aiortc_compat, direct_send, rtcp_fast
from bridge.room import BridgeState, Peer
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


def _play_peer(state: BridgeState, unit: str) -> Peer:
    return next(p for p in state.peers.values() if p.kind == "play" and p.unit == unit)


def _video_sender(peer: Peer) -> RTCRtpSender:
    return next(t.sender for t in peer.pc.getTransceivers() if t.kind == "video")


def _aiortc_rtcp_calls(dtls: RTCDtlsTransport) -> list[bytes]:
    """What reaches aiortc's own RTCP handling of ``dtls`` (its receive loop's step) from now on."""
    calls: list[bytes] = []
    original = dtls._handle_rtcp_data

    async def counted(data: bytes) -> None:
        calls.append(data)
        await original(data)

    dtls._handle_rtcp_data = counted  # type: ignore[method-assign]
    return calls


async def _player(url: str, state: BridgeState, camera: EncodedVideoTrack,
                  peers: list[Publisher | Player]) -> tuple[Player, Peer, direct_send.DirectSender]:
    peers.append(await whip(url, 1, token(BRIDGE, "CHAIR", "chair"), camera))
    player = await whep(url, 1, token(BRIDGE, "A"), query="?layer=high")
    peers.append(player)
    await player.wait_frames(20)
    peer = _play_peer(state, "A")
    direct = direct_send.direct_sender(_video_sender(peer))
    assert direct is not None
    return player, peer, direct


async def _reports_nacks_and_plis_arrive(player: Player, peer: Peer, direct: direct_send.DirectSender,
                                         camera: EncodedVideoTrack) -> None:
    """Receiver reports reach the adaptation (and aiortc's round trip and remote-inbound statistics),
    a lost packet is NACKed and retransmitted, a PLI asks the camera for a keyframe."""
    assert peer.adaptation is not None
    feedback = peer.adaptation.feedback
    sender = _video_sender(peer)
    reports = feedback.reports
    await until(lambda: feedback.reports >= reports + 2, STEP, "two receiver reports at the adaptation")
    await until(lambda: getattr(sender, aiortc_compat.SENDER_PRIVATE + "rtt") is not None, STEP,
                "aiortc's round-trip estimate from a receiver report")
    stats = await sender.getStats()
    assert any(s.type == "remote-inbound-rtp" for s in stats.values())

    lost = lose_next_rtp(player.pc, direct.ssrc)
    await until(lambda: lost() >= 0, STEP, "a video packet to be lost")
    await until(lambda: direct.retransmits >= 1, STEP, "the player's NACK to be answered")
    await player.wait_frames(len(player.frames) + 10)

    keyframes = camera.keyframes
    await asyncio.sleep(1.1)  # the publisher's keyframe requests are throttled
    receiver = next(t.receiver for t in player.pc.getTransceivers() if t.kind == "video")
    await aiortc_compat.send_pli(receiver, direct.ssrc)  # what a player that lost the picture sends
    await until(lambda: camera.keyframes > keyframes, STEP, "the PLI to ask the camera for a keyframe")


def _routes_as_aiortc(fast: rtcp_fast.FastRtcp, peer: Peer) -> None:
    """The fast path's recipients of each kind of RTCP packet are those of aiortc's router."""
    ssrcs = [t.sender._ssrc for t in peer.pc.getTransceivers()] + [0x1234]
    info = aiortc_rtp.RtcpSenderInfo(ntp_timestamp=1, rtp_timestamp=2, packet_count=3, octet_count=4)
    packets: list[Any] = [aiortc_rtp.RtcpSdesPacket(chunks=[])]
    for ssrc in ssrcs:
        block = aiortc_rtp.RtcpReceiverInfo(ssrc=ssrc, fraction_lost=0, packets_lost=0, highest_sequence=1,
                                            jitter=0, lsr=0, dlsr=0)
        packets += [aiortc_rtp.RtcpRrPacket(ssrc=9, reports=[block, block]),
                    aiortc_rtp.RtcpSrPacket(ssrc=ssrc, sender_info=info, reports=[block]),
                    aiortc_rtp.RtcpPsfbPacket(fmt=aiortc_rtp.RTCP_PSFB_PLI, ssrc=9, media_ssrc=ssrc),
                    aiortc_rtp.RtcpPsfbPacket(fmt=aiortc_rtp.RTCP_PSFB_APP, ssrc=9, media_ssrc=0,
                                              fci=aiortc_rtp.pack_remb_fci(100_000, [*ssrcs[:2], ssrc])),
                    aiortc_rtp.RtcpRtpfbPacket(fmt=aiortc_rtp.RTCP_RTPFB_NACK, ssrc=9, media_ssrc=ssrc),
                    aiortc_rtp.RtcpByePacket(sources=[ssrc, 0x4321])]
    packets.append(aiortc_rtp.RtcpPsfbPacket(fmt=aiortc_rtp.RTCP_PSFB_APP, ssrc=9, media_ssrc=0, fci=b"bad"))
    for packet in packets:
        assert set(fast.recipients(packet)) == fast.router.route_rtcp(packet), packet


async def test_a_subscribers_rtcp_is_handled_on_arrival(bridge: tuple[str, BridgeState]) -> None:
    url, state = bridge
    camera = EncodedVideoTrack("vp8", 320, 240, bitrate=600_000)
    peers: list[Publisher | Player] = []
    try:
        player, peer, direct = await _player(url, state, camera, peers)
        dtls = _video_sender(peer).transport
        fast = rtcp_fast.fast_rtcp(dtls)
        assert fast is not None, "a subscriber on a plain UDP pair gets the fast path"
        assert all(rtcp_fast.fast_rtcp(t.sender.transport) is fast for t in peer.pc.getTransceivers())
        slow = _aiortc_rtcp_calls(dtls)
        packets_before, rx_before = fast.packets, dtls._get_stats()
        await _reports_nacks_and_plis_arrive(player, peer, direct, camera)
        assert not slow, "no RTCP took aiortc's receive loop"
        assert fast.packets > packets_before and fast.waited == 0, "every handler ran to its end on arrival"
        _routes_as_aiortc(fast, peer)
        rx_now = dtls._get_stats()
        (before,), (now,) = rx_before.values(), rx_now.values()
        assert now.packetsReceived > before.packetsReceived and now.bytesReceived > before.bytesReceived
    finally:
        await close_peers(*peers)


@pytest.mark.parametrize("why", ["turned off", "internals differ"])
async def test_without_the_fast_path_aiortcs_own_path_does_it_all(
        bridge: tuple[str, BridgeState], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        why: str) -> None:
    if why == "turned off":
        monkeypatch.setattr(rtcp_fast, "ENABLED", False)
    else:  # an aiortc whose DTLS transport keeps its router under another name
        monkeypatch.setattr(aiortc_compat, "DTLS_ROUTER_ATTR", "_no_such_router")
    url, state = bridge
    camera = EncodedVideoTrack("vp8", 320, 240, bitrate=600_000)
    peers: list[Publisher | Player] = []
    try:
        with caplog.at_level(logging.WARNING, "hoinghi.bridge.rtcp_fast"):
            player, peer, direct = await _player(url, state, camera, peers)
        dtls = _video_sender(peer).transport
        assert rtcp_fast.fast_rtcp(dtls) is None
        assert ("aiortc's internals differ" in caplog.text) == (why == "internals differ")
        slow = _aiortc_rtcp_calls(dtls)
        await _reports_nacks_and_plis_arrive(player, peer, direct, camera)
        assert slow, "the RTCP took aiortc's receive loop"
    finally:
        await close_peers(*peers)


async def test_a_handler_that_waits_goes_on_as_a_task() -> None:
    steps: list[str] = []
    gate = asyncio.Event()

    async def handler() -> None:
        steps.append("start")
        await gate.wait()
        steps.append("end")

    async def quick() -> None:
        steps.append("quick")

    assert rtcp_fast.run_now(quick()) is True and steps == ["quick"]
    assert rtcp_fast.run_now(handler()) is False and steps == ["quick", "start"]
    gate.set()
    await until(lambda: steps == ["quick", "start", "end"], STEP, "the handler to finish as a task")

    async def failing() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("boom")

    assert rtcp_fast.run_now(failing()) is False
    await asyncio.sleep(0.05)  # logged, not raised into the loop
