"""Which rendition a subscriber's link can take, from what the subscriber reports — no decoding.

Every publisher sends two renditions of its camera (issue #16): ``high`` (≈640×480, ≈800 kbit/s)
and ``low`` (≈320×180, ≈150 kbit/s). A bridge forwards one of them to each subscriber, and a
subscriber that cannot take even the low one gets sound only. This module decides which, once a
second, from the figures a subscriber's RTCP tells its bridge:

- ``loss``: the fraction lost of its last receiver report (RFC 3550 §6.4.1);
- ``rtt_ms``: the round trip from that report (LSR/DLSR);
- ``remb_bps``: its receiver-estimated maximum bitrate, where negotiated (goog-remb);
- ``nacks``: how many packets it asked again since the last sample;
- ``sent_bps``: what the bridge actually sent it.

The rules are those of Google's congestion control (draft-ietf-rmcat-gcc §6), reduced to a choice
between two rates: loss over 10 % (or a REMB under the current rendition's rate, or a round trip
grown by a queue) is congestion; under 2 % the link is clear. Down is quick (two congested seconds
in a row), up is slow and tried like a probe: after ``up_after`` clear seconds the subscriber goes
up, and if it is congested again within ``trial_s`` the way up closes for twice as long (up to
``max_up_after``) — the hysteresis that keeps a 300 kbit/s commune from flapping. The switch
itself happens at the next keyframe of the new rendition (bridge.programme.Switch), so no
subscriber ever sees a frozen or garbled picture at a switch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Layer = Literal["high", "low", "audio"]
ORDER: tuple[Layer, ...] = ("audio", "low", "high")

LOSS_CONGESTED = 0.10
LOSS_CLEAR = 0.02
RTT_QUEUE_MS = 150.0  # a round trip this much over the link's best means a queue is building


@dataclass(frozen=True, slots=True)
class Sample:
    """One second of a subscriber's reports (None where it reported nothing)."""

    at: float
    loss: float | None = None
    rtt_ms: float | None = None
    remb_bps: float | None = None
    nacks: int = 0
    sent_bps: float | None = None


@dataclass(slots=True)
class RenditionChooser:
    """The rendition one subscriber should get; :meth:`update` once a second."""

    high_bps: float = 800_000
    low_bps: float = 150_000
    down_after: int = 2  # congested samples in a row before going down
    up_after: float = 8.0  # clear seconds before trying the way up
    max_up_after: float = 64.0
    trial_s: float = 10.0  # a way up congested again this soon was a failed probe
    settle_s: float = 3.0  # after a switch the reports still speak of the old rendition and its queue
    layer: Layer = "high"
    _congested: int = 0
    _clear_since: float | None = None
    _best_rtt: float | None = None
    _went_up_at: float | None = None
    _wait_up: float = 0.0
    _switched_at: float | None = None

    def __post_init__(self) -> None:
        self._wait_up = self.up_after

    def rate(self, layer: Layer) -> float:
        return {"high": self.high_bps, "low": self.low_bps, "audio": 0.0}[layer]

    def congested(self, s: Sample) -> bool:
        if s.loss is not None and s.loss > LOSS_CONGESTED:
            return True
        if s.remb_bps is not None and self.layer != "audio" and s.remb_bps < 0.85 * self.rate(self.layer):
            return True
        if s.rtt_ms is not None and self._best_rtt is not None and s.rtt_ms > self._best_rtt + RTT_QUEUE_MS:
            return True
        # NACKs for over 15 % of the packets it was sent: more is lost than retransmission can repair.
        if s.sent_bps and s.nacks * 1200 * 8 > 0.15 * s.sent_bps:
            return True
        return False

    def clear(self, s: Sample) -> bool:
        return (s.loss is None or s.loss < LOSS_CLEAR) and not self.congested(s)

    def update(self, s: Sample) -> Layer | None:
        """Take one sample; returns the new layer when the subscriber should switch, else None."""
        if s.rtt_ms is not None and s.loss is not None and s.loss < LOSS_CLEAR:
            self._best_rtt = s.rtt_ms if self._best_rtt is None else min(self._best_rtt, s.rtt_ms)
        if self._switched_at is not None and s.at - self._switched_at < self.settle_s:
            return None
        if self.congested(s):
            self._congested += 1
            self._clear_since = None
            if self._congested >= self.down_after and self.layer != "audio":
                return self._down(s.at)
            return None
        self._congested = 0
        if not self.clear(s):
            self._clear_since = None
            return None
        if self._clear_since is None:
            self._clear_since = s.at
        if self._went_up_at is not None and s.at - self._went_up_at >= self.trial_s:
            self._went_up_at = None  # the last way up held: the next one may come sooner
            self._wait_up = self.up_after
        if self.layer != "high" and s.at - self._clear_since >= self._wait_up:
            return self._up(s.at)
        return None

    def _down(self, at: float) -> Layer:
        if self._went_up_at is not None and at - self._went_up_at < self.trial_s:
            self._wait_up = min(self.max_up_after, self._wait_up * 2)  # a failed probe
        self._went_up_at = None
        self._congested = 0
        self._switched_at = at
        self.layer = ORDER[ORDER.index(self.layer) - 1]
        return self.layer

    def _up(self, at: float) -> Layer:
        self.layer = ORDER[ORDER.index(self.layer) + 1]
        self._went_up_at = at
        self._switched_at = None  # a way up that fails must come down quickly
        self._clear_since = at
        return self.layer
