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
between two rates: loss over 10 % is congestion, and so is loss of 2 % or more beside a round trip
grown by a queue; between 2 and 10 % the rendition holds (NACK repairs it); under 2 %, with the
receiver's REMB not under what it gets, the link is clear. A REMB never moves a subscriber down by
itself: a receiver's estimate ramps up slowly from its start (Chromium's sits under what it is sent
for many seconds on a clean link) and aiortc's falls with random loss that NACK repairs. Down is
quick (two congested seconds in a row, one when over 30 % is lost on the high rendition — as its
receiver report says, or a burst of its NACKs, whichever comes first; three more to sound only), up
is slow and probed first: after ``up_after`` clear seconds on the low rendition the chooser asks for
a **probe** (it returns ``"probe"``): the bridge sends that subscriber, for half a second, as much
again as the high rendition would add, as copies of packets it already has (bridge.probe), while the
picture stays low. Only when the reports of the next two seconds are as clear as before (no loss, no
queue) does the subscriber go up; a probe that met loss or a queue closes the way up for twice as
long (up to ``max_up_after``), and so does a way up congested again within ``trial_s`` — the
hysteresis that keeps a 300 kbit/s commune from flapping, without the seconds of frozen picture a
real move to the high rendition costs such a link each time it is tried. The switch itself happens
at the next keyframe of the new rendition (bridge.layers.AdaptiveTrack), so no subscriber ever sees
a frozen or garbled picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Layer = Literal["high", "low", "audio"]
Action = Literal["high", "low", "audio", "probe"]  # a layer to move to, or a probe of the way up
ORDER: tuple[Layer, ...] = ("audio", "low", "high")

LOSS_CONGESTED = 0.10
LOSS_SEVERE = 0.30  # a link losing this much is far over its capacity: down at the first such report
LOSS_CLEAR = 0.02
RTT_QUEUE_MS = 150.0  # a round trip this much over the link's best means a queue is building
PROBE_RTT_MS = 60.0  # during a probe, a round trip this much over the best: the probe filled a queue
PROBE_SAMPLES = 2  # samples a probe's verdict waits for (the receiver reports once a second or so)


@dataclass(frozen=True, slots=True)
class Sample:
    """One second of a subscriber's reports (None where it reported nothing)."""

    at: float
    loss: float | None = None
    rtt_ms: float | None = None
    remb_bps: float | None = None
    nacks: int = 0
    sent_bps: float | None = None
    severe_nacks: bool = False  # NACKs came in a burst, over LOSS_SEVERE of what was sent (bridge.adaptation)


@dataclass(slots=True)
class RenditionChooser:
    """The rendition one subscriber should get; :meth:`update` once a second."""

    high_bps: float = 800_000
    low_bps: float = 150_000
    down_after: int = 2  # congested samples in a row before going down
    up_after: float = 8.0  # clear seconds before trying the way up
    max_up_after: float = 64.0
    trial_s: float = 10.0  # a way up congested again this soon was a failed probe
    settle_s: float = 4.0  # after a switch the reports still speak of the old rendition and its queue
    layer: Layer = "high"
    _congested: int = 0
    _clear_since: float | None = None
    _best_rtt: float | None = None
    _went_up_at: float | None = None
    _wait_up: float = 0.0
    _switched_at: float | None = None
    _probe_samples: int | None = None  # samples since a probe of the way up began (None: no probe)
    _probe_heard: bool = False  # a receiver report came during the probe's verdict

    def __post_init__(self) -> None:
        self._wait_up = self.up_after

    def rate(self, layer: Layer) -> float:
        return {"high": self.high_bps, "low": self.low_bps, "audio": 0.0}[layer]

    def congested(self, s: Sample) -> bool:
        if (s.loss is not None and s.loss > LOSS_CONGESTED) or s.severe_nacks:
            return True
        # A queue building up: a round trip grown well over the link's best, with some loss beside
        # it (alone it may be a stalled process, which stretches round trips too).
        if (s.loss is not None and s.loss >= LOSS_CLEAR and s.rtt_ms is not None and self._best_rtt is not None
                and s.rtt_ms > self._best_rtt + RTT_QUEUE_MS):
            return True
        # NACKs for over 15 % of the packets it was sent: more is lost than retransmission can repair.
        if s.sent_bps and s.sent_bps > 0.25 * self.rate(self.layer) and s.nacks * 1200 * 8 > 0.15 * s.sent_bps:
            return True
        return False

    def clear(self, s: Sample) -> bool:
        """Under 2 % loss, no queue, and the receiver's own estimate (REMB) not under what it gets
        now: only then is a way up worth trying."""
        if s.remb_bps is not None and s.sent_bps and s.remb_bps < 0.85 * s.sent_bps:
            return False
        return (s.loss is None or s.loss < LOSS_CLEAR) and not self.congested(s)

    def update(self, s: Sample) -> Action | None:
        """Take one sample; returns the new layer when the subscriber should switch, ``"probe"``
        when the bridge should probe the way up, else None."""
        if self._probe_samples is not None:
            return self._judge_probe(s)
        if s.rtt_ms is not None and s.loss is not None and s.loss < LOSS_CLEAR:
            self._best_rtt = s.rtt_ms if self._best_rtt is None else min(self._best_rtt, s.rtt_ms)
        if self._switched_at is not None and s.at - self._switched_at < self.settle_s:
            return None
        if self.congested(s):
            self._congested += 1
            self._clear_since = None
            # Sound only is the last resort: one more congested second than a move to low needs
            needed = self.down_after + (1 if self.layer == "low" else 0)
            if self.layer == "high" and ((s.loss is not None and s.loss >= LOSS_SEVERE) or s.severe_nacks):
                needed = 1  # every second on high freezes the picture; low is only a keyframe away
            if self._congested >= needed and self.layer != "audio":
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
            if self.layer == "low":  # sound only sends no video to probe with: it just goes up
                self._probe_samples, self._probe_heard = 0, False
                return "probe"
            return self._up(s.at)
        return None

    def _judge_probe(self, s: Sample) -> Action | None:
        """A sample after a probe began: any loss, a NACK, or a round trip grown by a queue, fails it
        (the way up waits twice as long); clear reports through ``PROBE_SAMPLES`` samples (one at
        least from the receiver) take the subscriber up."""
        assert self._probe_samples is not None
        self._probe_samples += 1
        queued = s.rtt_ms is not None and self._best_rtt is not None and s.rtt_ms > self._best_rtt + PROBE_RTT_MS
        # a NACK during the probe's first samples is a packet the link lost under it (the probe stops
        # there: bridge.probe); its receiver report may come too late, or count too few packets, to say so
        nacked = s.nacks > 0 and self._probe_samples <= PROBE_SAMPLES
        if self.congested(s) or (s.loss is not None and s.loss >= LOSS_CLEAR) or queued or nacked:
            self._probe_samples = None
            self._wait_up = min(self.max_up_after, self._wait_up * 2)
            self._clear_since = None
            self._switched_at = s.at  # the probe's own loss still echoes in the next reports
            return None
        self._probe_heard = self._probe_heard or s.loss is not None
        if self._probe_samples < PROBE_SAMPLES or (not self._probe_heard and self._probe_samples < PROBE_SAMPLES + 2):
            return None
        heard, self._probe_samples = self._probe_heard, None
        if not heard:  # the receiver said nothing of the probe: no reason to believe the link takes more
            self._clear_since = s.at
            return None
        return self._up(s.at)

    def _down(self, at: float) -> Layer:
        self._probe_samples = None
        if self._went_up_at is not None and at - self._went_up_at < self.trial_s:
            self._wait_up = min(self.max_up_after, self._wait_up * 2)  # a way up that failed
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
