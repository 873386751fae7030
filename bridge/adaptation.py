"""Adaptation per subscriber (issue #16): once a second, what each subscriber's RTCP told its bridge
becomes a :class:`bridge.adapt.Sample`, its :class:`bridge.adapt.RenditionChooser` decides, and its
:class:`bridge.layers.AdaptiveTrack` moves (at a keyframe) when it says so. Nothing is decoded.

The figures come from the subscriber's own reports on the video sender:
- receiver reports (RFC 3550 §6.4.2): the fraction lost since its last report, and the round trip
  aiortc computes from them;
- REMB (its receiver-estimated maximum bitrate, Chromium and aiortc both send it for video);
- NACKs, as the packets the direct sender retransmitted; and as they come, a burst of them (over
  LOSS_SEVERE of the packets sent lately, NACK_BURST_WINDOW): the link's first second of heavy
  loss decides at once, before its receiver report says so (the picture freezes meanwhile);
- and what the bridge sent it, per second.

Before a subscriber goes up, the bridge probes its link (bridge.probe) and the chooser judges the
reports that follow.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCRtpSender
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    unpack_remb_fci,
)

from bridge import aiortc_compat as compat
from bridge.adapt import LOSS_SEVERE, RenditionChooser, Sample
from bridge.direct_send import direct_sender
from bridge.layers import AdaptiveTrack
from bridge.probe import probe

log = logging.getLogger("hoinghi.bridge.adaptation")

PERIOD = 1.0  # seconds between samples
WARMUP = 3.0  # a new subscriber's first reports speak of its start (an estimator still ramping up)
RATE_ALPHA = 0.3  # weight of the newest second in the measured rate of a rendition
NACK_BURST_WINDOW = 1.0  # seconds of NACKed packets a burst is judged on
NACK_BURST_MIN = 8  # distinct packets asked again before a burst is one (not a few random losses)


@dataclass(eq=False)
class Feedback:
    """What one subscriber's RTCP said since the last sample."""

    loss: float | None = None
    remb_bps: float | None = None
    reports: int = 0
    # Called at once when a report, or a burst of NACKs, says the link loses so much (LOSS_SEVERE)
    # that waiting for the next sample would leave the picture frozen for another second
    on_severe: Callable[[], None] | None = None
    severe_nacks: bool = False  # a burst of NACKs since the last sample
    bursts: int = 0
    _nacked: dict[int, float] = field(default_factory=dict)  # sequence number → when first asked again

    def take(self) -> tuple[float | None, float | None, bool]:
        out = (self.loss, self.remb_bps, self.severe_nacks)
        self.loss = self.remb_bps = None
        self.severe_nacks = False
        return out

    def nacked(self, lost: list[int], newest: int, now: float, sent: Callable[[int], bool] = bool) -> bool:
        """A NACK for ``lost`` (sequence numbers), ``newest`` the last one sent: whether, among the
        packets asked again over the last NACK_BURST_WINDOW s (a receiver asks for a packet again
        while it is missing: each counts once), a run from the most recent of them back is at least
        NACK_BURST_MIN packets and LOSS_SEVERE of the packets it spans: a burst, not the random
        losses of a lossy link (5 % makes eight in 27 packets once in many hours). Only packets
        ``sent`` count (a receiver also asks for those a splice jumped over, never sent)."""
        nacked = self._nacked
        for seq in lost:
            if sent(seq):
                nacked.setdefault(seq, now)
        for seq in [q for q, at in nacked.items() if now - at > NACK_BURST_WINDOW]:
            del nacked[seq]
        if len(nacked) < NACK_BURST_MIN:
            return False
        ages = sorted((newest - seq) & 0xFFFF for seq in nacked)  # packets sent since each
        ages = [age - ages[0] for age in ages]
        return any(count >= LOSS_SEVERE * (age + 1)
                   for count, age in enumerate(ages[NACK_BURST_MIN - 1:], start=NACK_BURST_MIN))


def listen(sender: RTCRtpSender, feedback: Feedback) -> None:
    """Note the receiver reports and REMBs the remote end of ``sender`` sends about its stream."""
    original: Callable[[Any], Awaitable[None]] = getattr(sender, compat.SENDER_RTCP_METHOD)

    async def hooked(packet: Any) -> None:
        ssrc = getattr(sender, compat.SENDER_SSRC)
        if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
            for report in packet.reports:
                if report.ssrc == ssrc:
                    loss = report.fraction_lost / 256
                    feedback.loss = loss if feedback.loss is None else max(feedback.loss, loss)
                    feedback.reports += 1
                    if loss >= LOSS_SEVERE and feedback.on_severe is not None:
                        feedback.on_severe()
        elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK and packet.media_ssrc == ssrc:
            direct = direct_sender(sender)
            if direct is not None and feedback.nacked(packet.lost, (direct.sequence_number - 1) & 0xFFFF,
                                                      asyncio.get_running_loop().time(), direct.history.holds):
                feedback.severe_nacks = True
                feedback.bursts += 1
                if feedback.on_severe is not None:
                    feedback.on_severe()
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                bitrate, ssrcs = 0, []
            if ssrc in ssrcs:
                feedback.remb_bps = float(bitrate)
        await original(packet)

    setattr(sender, compat.SENDER_RTCP_METHOD, hooked)


@dataclass(eq=False)
class Adaptation:
    """One adaptive subscriber: its track, its sender, its chooser."""

    track: AdaptiveTrack
    sender: RTCRtpSender
    started: float
    chooser: RenditionChooser = field(default_factory=RenditionChooser)
    feedback: Feedback = field(default_factory=Feedback)
    pinned: bool = False  # ``?layer=``: reported, never moved
    _octets: int = 0
    _retransmits: int = 0
    _at: float | None = None
    _probe: asyncio.Task[int] | None = None

    def sample(self, now: float) -> Sample:
        direct = direct_sender(self.sender)
        octets = direct.octets if direct is not None else 0
        retransmits = direct.retransmits if direct is not None else 0
        sent_bps = None
        if self._at is not None and now > self._at:
            sent_bps = max(0, octets - self._octets) * 8 / (now - self._at)
        nacks = max(0, retransmits - self._retransmits)
        self._octets, self._retransmits, self._at = octets, retransmits, now
        loss, remb, severe = self.feedback.take()
        rtt = getattr(self.sender, compat.SENDER_PRIVATE + "rtt", None)
        if sent_bps and self.track.layer != "audio":  # the rendition's real rate, not a nominal one
            chooser = self.chooser
            if self.track.layer == "high":
                chooser.high_bps = (1 - RATE_ALPHA) * chooser.high_bps + RATE_ALPHA * sent_bps
            else:
                chooser.low_bps = (1 - RATE_ALPHA) * chooser.low_bps + RATE_ALPHA * sent_bps
        return Sample(at=now, loss=loss, rtt_ms=rtt * 1000 if rtt is not None else None, remb_bps=remb,
                      nacks=nacks, sent_bps=sent_bps, severe_nacks=severe)

    def step(self, now: float) -> None:
        sample = self.sample(now)
        if self.pinned or self.track.readyState != "live" or now - self.started < WARMUP:
            return
        self.chooser.layer = self.track.layer if self.track.pending is None else self.chooser.layer
        layer = self.chooser.update(sample)
        if layer == "probe":
            self._start_probe()
        elif layer is not None:
            log.info("subscriber %s: %s -> %s (loss %s, rtt %s ms, remb %s, sent %s bps%s)", self.track.id,
                     self.track.layer, layer, sample.loss, sample.rtt_ms, sample.remb_bps,
                     round(sample.sent_bps or 0), ", a burst of NACKs" if sample.severe_nacks else "")
            self.track.want(layer)

    def urgent(self, now: float) -> None:
        """A report (or a burst of NACKs) of heavy loss on the high rendition: decide now, not at
        the next second."""
        if self.track.layer == "high" and self.track.pending is None and self.track.readyState == "live":
            try:
                self.step(now)
            except Exception:
                log.exception("adaptation of %s failed", self.track.id)

    def _start_probe(self) -> None:
        direct = direct_sender(self.sender)
        if direct is None or (self._probe is not None and not self._probe.done()):
            return
        extra = max(0.0, self.chooser.high_bps - self.chooser.low_bps)
        log.info("subscriber %s: probing the way up (+%d bps)", self.track.id, round(extra))
        self._probe = asyncio.get_running_loop().create_task(probe(direct, extra), name=f"probe-{self.track.id}")

    def stop(self) -> None:
        if self._probe is not None:
            self._probe.cancel()


class Adapter:
    """Every adaptive subscriber of a bridge, stepped once a second by one task."""

    def __init__(self) -> None:
        self.subscribers: set[Adaptation] = set()
        self._task: asyncio.Task[None] | None = None

    def watch(self, track: AdaptiveTrack, sender: RTCRtpSender, pinned: bool = False) -> Adaptation:
        loop = asyncio.get_running_loop()
        adaptation = Adaptation(track, sender, loop.time(), pinned=pinned)
        listen(sender, adaptation.feedback)
        adaptation.feedback.on_severe = lambda: adaptation.urgent(loop.time())
        self.subscribers.add(adaptation)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="adaptation")
        return adaptation

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self.subscribers:
            await asyncio.sleep(PERIOD)
            now = loop.time()
            for adaptation in list(self.subscribers):
                if adaptation.track.readyState != "live":
                    self.subscribers.discard(adaptation)
                    adaptation.stop()
                    continue
                try:
                    adaptation.step(now)
                except Exception:
                    log.exception("adaptation of %s failed", adaptation.track.id)

    async def close(self) -> None:
        for adaptation in self.subscribers:
            adaptation.stop()
        self.subscribers.clear()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
