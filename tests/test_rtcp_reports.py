"""The direct senders' RTCP sender reports from one shared timer (bridge.rtcp_reports), with real
aiortc peers: the bytes are aiortc's, a player learns what the video sender sent (and the bridge its
round trip: tests/test_rtcp_fast.py), and a sender that sends nothing reports seldom."""

from __future__ import annotations

from aiortc import RTCRtpSender
from aiortc.rtp import RtcpSenderInfo, RtcpSrPacket

from bridge import direct_send, rtcp_reports
from bridge.room import BridgeState
from tests.conftest import MEDIA_BRIDGE
from tests.media_util import STEP, EncodedVideoTrack, Player, Publisher, close_peers, token, until, whep, whip

BRIDGE = MEDIA_BRIDGE


def test_a_sender_report_is_what_aiortc_sends() -> None:
    for ssrc, ntp, rtp, packets, octets in [(1, 0, 0, 0, 0), (0xDEADBEEF, 0xE9F0_1234_5678_9ABC, 0xFFFFFFFF, 12345,
                                                                 (1 << 32) + 7)]:
        info = RtcpSenderInfo(ntp_timestamp=ntp, rtp_timestamp=rtp, packet_count=packets & 0xFFFFFFFF,
                              octet_count=octets & 0xFFFFFFFF)
        assert rtcp_reports.sender_report(ssrc, ntp, rtp, packets, octets) == bytes(
            RtcpSrPacket(ssrc=ssrc, sender_info=info))


def _senders(state: BridgeState, unit: str) -> list[RTCRtpSender]:
    peer = next(p for p in state.peers.values() if p.kind == "play" and p.unit == unit)
    return [t.sender for t in peer.pc.getTransceivers()]


async def test_reports_of_what_is_sent_and_seldom_of_silence(bridge: tuple[str, BridgeState]) -> None:
    url, state = bridge
    camera = EncodedVideoTrack("vp8", 320, 240, bitrate=600_000)
    peers: list[Publisher | Player] = []
    try:
        peers.append(await whip(url, 1, token(BRIDGE, "CHAIR", "chair"), camera, audio=False))  # no sound at all
        player = await whep(url, 1, token(BRIDGE, "A"))
        peers.append(player)
        await player.wait_frames(10)
        senders = _senders(state, "A")
        assert all(direct_send.direct_sender(s) is not None for s in senders if s.track is not None)
        reporters = {s.track.kind: rtcp_reports.reporter(s) for s in senders if s.track is not None}
        video, audio = reporters["video"], reporters["audio"]
        assert video is not None and audio is not None, "the direct senders report through the shared timer"
        await until(lambda: video.reports >= 2 and audio.skipped >= 2, STEP, "a few report intervals")
        assert video.skipped == 0, "a sender that sends reports every interval"
        assert audio.reports == 1, "a silent sender reported once, then skipped"
        stats = await player.pc.getStats()
        remote = [s for s in stats.values() if s.type == "remote-outbound-rtp" and s.kind == "video"]
        sent = direct_send.direct_sender(video.sender)
        assert sent is not None and remote and 0 < remote[0].packetsSent <= sent.packets
    finally:
        await close_peers(*peers)
