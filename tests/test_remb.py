"""#16: the bandwidth estimate a bridge reports to a publisher (bridge/remb.py), on aiortc's own
estimator and receivers: one estimate for a camera's two renditions, listing both SSRCs (the
browser takes a REMB as the cap of its whole connection), never under the floor; the browser's
view of it is test_media_browser's."""

from __future__ import annotations

from aiortc import RTCPeerConnection
from aiortc.rate import RemoteBitrateEstimator

from bridge.remb import RECEIVER_BITRATE_ESTIMATOR, REMB_FLOOR, ConnectionEstimate, share_estimate


def feed(estimate: ConnectionEstimate | RemoteBitrateEstimator, seconds: float, streams: dict[int, int],
         start_ms: int = 0) -> list[tuple[int, list[int]]]:
    """Packets of 1,000 bytes from each ``ssrc: bit/s`` stream, sent and arriving evenly (no queue),
    with their abs-send-time (6.18 fixed point seconds); the REMBs the estimator would send."""
    events = []
    for ssrc, rate in streams.items():
        gap_ms = 8000 / rate * 1000
        events += [(start_ms + i * gap_ms, ssrc) for i in range(int(seconds * 1000 / gap_ms))]
    rembs = []
    for at_ms, ssrc in sorted(events):
        abs_send_time = int(at_ms / 1000 * (1 << 18)) & 0xFFFFFF
        got = estimate.add(arrival_time_ms=int(at_ms), abs_send_time=abs_send_time, payload_size=1000, ssrc=ssrc)
        if got is not None:
            rembs.append(got)
    return rembs


def test_one_estimate_for_both_renditions_listing_both() -> None:
    shared = ConnectionEstimate(RemoteBitrateEstimator())
    rembs = feed(shared, 12, {1111: 800_000, 2222: 150_000})
    assert rembs
    bitrate, ssrcs = rembs[-1]
    assert sorted(ssrcs) == [1111, 2222]
    # the estimate covers what both streams carry together (~950 kbit/s), not one of them
    alone = feed(RemoteBitrateEstimator(), 12, {2222: 150_000})
    assert bitrate > 950_000 * 0.9 and bitrate > 3 * alone[-1][0], (bitrate, alone[-1])


def test_never_under_the_floor() -> None:
    estimate = ConnectionEstimate(RemoteBitrateEstimator())
    rembs = feed(estimate, 8, {3333: 100_000})  # a thin stream: aiortc's own estimate stays low
    raw = feed(RemoteBitrateEstimator(), 8, {3333: 100_000})
    assert raw[-1][0] < REMB_FLOOR
    assert rembs and min(b for b, _ in rembs) == REMB_FLOOR


async def test_a_publishing_connections_video_receivers_share_it() -> None:
    pc = RTCPeerConnection()
    try:
        high, low = pc.addTransceiver("video"), pc.addTransceiver("video")
        audio = pc.addTransceiver("audio")
        shared = share_estimate(pc)
        assert shared is not None
        assert getattr(high.receiver, RECEIVER_BITRATE_ESTIMATOR) is shared
        assert getattr(low.receiver, RECEIVER_BITRATE_ESTIMATOR) is shared
        assert getattr(audio.receiver, RECEIVER_BITRATE_ESTIMATOR) is None  # audio has none, as in aiortc
    finally:
        await pc.close()
