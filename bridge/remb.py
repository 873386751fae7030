"""The bandwidth estimate a bridge reports to a publisher (REMB, issue #16).

A REMB carries the estimate for *all* the streams it lists, and a browser takes it as the cap of
its whole connection (its own loss-based estimate is the other bound). aiortc keeps an estimator
per receiver, so a camera sending two renditions got two REMBs, each the estimate of one stream;
the low rendition's (~150 kbit/s) capped the connection and left the high one a few dozen
kbit/s: the chair's picture went out at 3–4 frames a second (seen in the demo:
``availableOutgoingBitrate`` 139 kbit/s, ``targetBitrate`` 35–43 kbit/s).

:func:`share_estimate` gives every video receiver of a publishing connection one estimator, fed by
all its streams, as libwebrtc's own receive side does: its REMB lists every SSRC. What it reports
never goes under :data:`REMB_FLOOR`: the estimator is delay-based, and it takes the time a packet
is *handled* for its arrival, so a bridge short of CPU (a loaded CI machine: 82 kbit/s) reads its
own lateness as a congested link and throttles every publisher. Under the floor the browser's
loss-based estimate alone governs, which still backs off on a link that really loses packets.
"""

from __future__ import annotations

from typing import Any

from aiortc import RTCPeerConnection

# The attribute of aiortc's RTCRtpReceiver that holds its RemoteBitrateEstimator (None on audio
# receivers): .add(arrival_time_ms, abs_send_time, payload_size, ssrc) -> (bitrate, ssrcs) or None.
RECEIVER_BITRATE_ESTIMATOR = "_RTCRtpReceiver__remote_bitrate_estimator"
REMB_FLOOR = 500_000  # bit/s: a camera's high rendition at a usable rate beside its low one (~150)


class ConnectionEstimate:
    """One publishing connection's estimator: aiortc's, over all its video streams, floored."""

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator
        self.reported = 0  # the last estimate reported (bit/s)

    def add(self, arrival_time_ms: int, abs_send_time: int, payload_size: int,
            ssrc: int) -> tuple[int, list[int]] | None:
        result = self.estimator.add(arrival_time_ms=arrival_time_ms, abs_send_time=abs_send_time,
                                    payload_size=payload_size, ssrc=ssrc)
        if result is None:
            return None
        bitrate, ssrcs = result
        self.reported = max(int(bitrate), REMB_FLOOR)
        return self.reported, ssrcs


def share_estimate(pc: RTCPeerConnection) -> ConnectionEstimate | None:
    """Give every video receiver of ``pc`` one :class:`ConnectionEstimate` (call it once its
    transceivers exist, before media flows). None: no video receiver, or aiortc's receivers do
    not hold an estimator under the name this knows."""
    receivers = [t.receiver for t in pc.getTransceivers() if t.kind == "video"]
    estimators = [getattr(r, RECEIVER_BITRATE_ESTIMATOR, None) for r in receivers]
    if not receivers or any(e is None for e in estimators):
        return None
    shared = ConnectionEstimate(estimators[0])
    for receiver in receivers:
        setattr(receiver, RECEIVER_BITRATE_ESTIMATOR, shared)
    return shared
