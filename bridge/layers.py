"""Two renditions per camera, one per subscriber (issue #16): the subscriber's side of the switch.

Every publisher sends its camera twice, ``high`` (≈640×480) and ``low`` (≈320×240), and the
programme carries each on its own timeline (:class:`bridge.programme.Programme`, ``video`` and
``video_low``). A subscriber playing with one video m-line gets an :class:`AdaptiveTrack`: a relay
track that sits in the fan-out of one rendition and can move to the other — or stop its video
altogether ("audio": a link that cannot take even the low rendition keeps the sound).

A move is keyframe-gated, like a floor switch: the track keeps forwarding its current rendition and
listens to the other one through a :class:`_Feed`, asking that rendition's publisher for a keyframe;
at that keyframe it leaves the old fan-out and joins the new one, and the stream it sends continues
without a seam — the RTP timestamps advance by the wall-clock time since the last frame and (VP8) the
picture id by one (:meth:`bridge.direct_send.DirectSender.splice`; on aiortc's own sender loop the
track re-bases the timestamps itself). Nothing is decoded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

import av

from bridge.native_fanout import NativeFanout
from bridge.relay import VIDEO_QUEUE_FRAMES, Fanout, RelayTrack
from bridge.rtp_frames import FramePacker

Rendition = Literal["high", "low"]
Layer = Literal["high", "low", "audio"]
VIDEO_CLOCK = 90000


class _Feed:
    """What a rendition's fan-out pushes into while an :class:`AdaptiveTrack` waits to move there."""

    kind = "video"
    native_sender = None  # never sent by a C loop (bridge.native_fanout)

    def __init__(self, track: AdaptiveTrack, rendition: Rendition) -> None:
        self.track = track
        self.rendition = rendition

    def push(self, packet: av.Packet, keyframe: bool, codec: str | None = None) -> None:
        self.track._offered(self, packet, keyframe, codec)

    def resync(self) -> None:
        pass

    def stop(self) -> None:
        self.track._drop_feed()


class AdaptiveTrack(RelayTrack):
    """One subscriber's video: the rendition its link takes, switched at keyframes."""

    def __init__(self, fanouts: dict[Rendition, Fanout], rendition: Rendition = "high",
                 clock: Callable[[], float] = time.monotonic) -> None:
        fanout = fanouts[rendition]
        super().__init__("video", fanout.request_keyframe, VIDEO_QUEUE_FRAMES, packer=fanout.packer)
        self.fanouts = fanouts
        self.rendition: Rendition = rendition  # the fan-out this track sits in
        self.layer: Layer = rendition  # what the subscriber gets now
        self.pending: Rendition | None = None
        self.switches = 0
        self._clock = clock
        self._feed: _Feed | None = None
        self._splice: Callable[[FramePacker, bool], None] | None = None
        # aiortc's own sender loop (no direct send): the timestamps are re-based here at a move
        self._offset = 0
        self._rebase = False
        self._last_pts: int | None = None
        self._last_time = 0.0
        fanout.tracks.add(self)

    @property
    def fanout(self) -> Fanout:
        return self.fanouts[self.rendition]

    def native_home(self) -> NativeFanout | None:
        return None if self.layer == "audio" or self.withheld is not None else self.fanout.native

    def attach_splice(self, splice: Callable[[FramePacker, bool], None]) -> None:
        """The direct sender's splice (see :meth:`bridge.direct_send.DirectSender.splice`)."""
        self._splice = splice

    def want(self, layer: Layer) -> None:
        """Move this subscriber to ``layer`` (at the next keyframe of that rendition; at once to "audio")."""
        if layer == self.layer and self.pending is None:
            return
        self.leave_native()
        self._drop_feed()
        if layer == "audio":
            self.layer = "audio"
            return
        if layer == self.rendition:
            if self.layer == "audio":  # the video comes back where it stopped: from its next keyframe
                self.layer = layer
                self.resync()
                if self._splice is not None:
                    self._splice(self.packer, True)
                self.request_keyframe()
            return
        self.pending = layer
        self._feed = _Feed(self, layer)
        target = self.fanouts[layer]
        target.tracks.add(self._feed)  # type: ignore[arg-type]
        target.request_keyframe()

    def _drop_feed(self) -> None:
        feed, self._feed, self.pending = self._feed, None, None
        if feed is not None:
            self.fanouts[feed.rendition].tracks.discard(feed)

    def _offered(self, feed: _Feed, packet: av.Packet, keyframe: bool, codec: str | None) -> None:
        if feed is not self._feed:
            return
        target = self.fanouts[feed.rendition]
        if not keyframe:
            target.request_keyframe()  # throttled at the publisher; covers a lost request
            return
        self.leave_native()
        self._drop_feed()
        self.fanout.tracks.discard(self)
        down = self.layer == "audio" or (self.rendition == "high" and feed.rendition == "low")
        self.rendition = self.layer = feed.rendition
        target.tracks.add(self)
        self.packer = target.packer
        self._on_resync = target.request_keyframe
        self.switches += 1
        if self._splice is not None:
            self._splice(target.packer, down)
        else:
            self._rebase = True
        self._waiting_keyframe = False
        self.push(packet, keyframe, codec)

    def push(self, packet: av.Packet, keyframe: bool, codec: str | None = None) -> None:
        if self.layer == "audio":
            self.packets_dropped += 1
            return
        if self._splice is None and self._direct is None:
            packet = self._rebased(packet)
        super().push(packet, keyframe, codec)

    def _rebased(self, packet: av.Packet) -> av.Packet:
        """aiortc's sender loop stamps what it is given: keep its timeline continuous across moves."""
        assert packet.pts is not None
        now = self._clock()
        if self._rebase:
            self._rebase = False
            if self._last_pts is not None:
                step = max(1, round((now - self._last_time) * VIDEO_CLOCK))
                self._offset = self._last_pts + step - packet.pts
        if self._offset:
            out = av.Packet(bytes(packet))
            out.pts = packet.pts + self._offset
            out.time_base = packet.time_base
            packet = out
        self._last_pts, self._last_time = packet.pts, now
        return packet

    def stop(self) -> None:
        self._drop_feed()
        for fanout in self.fanouts.values():
            fanout.tracks.discard(self)
        super().stop()
