"""The programme of a meeting: one video (the floor holder, else the chair), chair audio and
floor-holder audio, each one continuous timeline whatever source feeds it.

A :class:`Switch` moves a timeline from one source to another: for video it asks the new
source for a keyframe and keeps forwarding the old source until that keyframe arrives (no
subscriber ever sees a frozen or garbled picture), then re-bases the new source's timestamps so
the outgoing timeline stays monotonic (the RTP timestamps a subscriber receives advance by the
wall-clock time of the switch, as if one camera had kept running). Sound handed over from a source
that is still sending goes on packet to packet.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import av

from bridge.relay import Fanout, RelayTrack, Source

CLOCK_RATE = {"video": 90000, "audio": 48000}
STILL_SENDING_S = 0.25  # a microphone whose last packet is this recent still sends (packets every 20 ms)


class Switch:
    """One outgoing timeline fed by at most one source at a time."""

    def __init__(self, kind: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.kind = kind
        self._clock = clock
        self.fanout = Fanout(kind, self._request_keyframe)
        self.current: Source | None = None
        self.pending: Source | None = None
        self._offset = 0
        self._last_pts: int | None = None
        self._last_time = 0.0
        self._last_step = 0  # the current source's last pts step (one packet's duration)
        self._current_live = False  # the current source sent something since the pending one was chosen
        self.switches = 0
        # Called with each packet the timeline sends, after its subscribers had it (a recorder)
        self.taps: list[Callable[[av.Packet, bool, str | None], None]] = []

    def _request_keyframe(self) -> None:
        source = self.pending or self.current
        if source is not None:
            source.request_keyframe()

    def select(self, source: Source | None) -> None:
        """Feed the timeline from ``source`` (None: silence) from its next keyframe on."""
        if self.pending is not None and self.pending is not source:
            self._detach(self.pending)
            self.pending = None
        if source is self.current:
            return
        if source is None:
            if self.current is not None:
                self._detach(self.current)
            self.current = None
            return
        if self.current is None or self.current.ended.is_set():
            if self.current is not None:
                self._detach(self.current)
            self.current = None
        self.pending = source
        self._current_live = False
        if self._on_packet not in source.listeners:
            source.listeners.append(self._on_packet)
        source.request_keyframe()

    def _replacing_live(self, source: Source) -> bool:
        """``source`` is the same site's new microphone while its old one still sends (a page
        adding its camera opens its microphone again: the first second of it may be silence)."""
        current = self.current
        return (self.kind == "audio" and current is not None and bool(source.label) and current.label == source.label
                and not current.ended.is_set() and self._clock() - self._last_time < STILL_SENDING_S)

    def _detach(self, source: Source) -> None:
        if self._on_packet in source.listeners:
            source.listeners.remove(self._on_packet)

    def _on_packet(self, source: Source, packet: av.Packet, keyframe: bool) -> None:
        if source is self.pending:
            if not keyframe:
                source.request_keyframe()  # throttled at the source; covers a lost request
                return
            if self._replacing_live(source) and not source.sounding.is_set():
                return  # the same site's old microphone goes on until the new one carries voice
            self._take_over(source, packet)
        if source is not self.current:
            return
        assert packet.pts is not None
        out = av.Packet(bytes(packet))
        out.pts = packet.pts + self._offset
        if self._last_pts is not None and out.pts > self._last_pts:
            self._last_step = out.pts - self._last_pts
        self._current_live = True
        out.time_base = packet.time_base
        self._last_pts = out.pts
        self._last_time = self._clock()
        self.fanout.push(out, keyframe, source.codec)
        for tap in self.taps:
            tap(out, keyframe, source.codec)

    def _take_over(self, source: Source, packet: av.Packet) -> None:
        assert packet.pts is not None
        if self.current is not None:
            self._detach(self.current)
        self.current = source
        self.pending = None
        self.switches += 1
        previous_live = self.current is not None and not self.current.ended.is_set() and self._current_live
        if self._last_pts is None:
            self._offset = -packet.pts
        elif self.kind == "audio" and previous_live and self._last_step:
            # Sound handed over from a source that is still sending (make before break): the new
            # source's packet follows the old one's last, whatever the wall clock says (a process
            # that stalled would otherwise stamp a hole in the timeline that was never silent).
            self._offset = self._last_pts + self._last_step - packet.pts
        else:
            elapsed = max(0.0, self._clock() - self._last_time)
            step = max(1, round(elapsed * CLOCK_RATE[self.kind]))
            self._offset = self._last_pts + step - packet.pts

    def close(self) -> None:
        for source in (self.current, self.pending):
            if source is not None:
                self._detach(source)
        self.current = self.pending = None
        self.fanout.close()


@dataclass
class Site:
    """What one site publishes."""

    unit: str
    video: Source | None
    audio: Source | None
    video_low: Source | None = None  # its low rendition (issue #16), if it sends one

    def rendition(self, which: str) -> Source | None:
        """The source of rendition ``which`` ("high" or "low"), else the one it sends (an older
        client sends one; a thumbnail publication only the low one)."""
        if which == "low":
            return self.video_low or self.video
        return self.video or self.video_low

    def sends(self, source: Source | None) -> bool:
        return source is not None and (source is self.video or source is self.video_low)


class Programme:
    """What every subscriber of a meeting sees and hears."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.video = Switch("video", clock)
        self.video_low = Switch("video", clock)  # the same pictures in the low rendition
        self.chair_audio = Switch("audio", clock)
        self.floor_audio = Switch("audio", clock)
        self.sites: dict[str, Site] = {}
        self.muted: frozenset[str] = frozenset()  # units the chair muted: their sound is dropped here
        # False until the server's list of muted units arrived (a bridge with a control channel): a
        # site's sound waits for it, so a site muted before this bridge started is never heard.
        self.mutes_known = True
        self.chair_unit: str | None = None
        self.floor: str | None = None
        # cascade: the upstream's floor audio, heard when the floor holder does not publish here
        self.upstream_floor_audio: Source | None = None
        # Screen sharing ("content", a second video): the sources shared here, by unit; the
        # timeline carries the floor holder's, else the chair's (on a bridge with an upstream the
        # chair's place is the upstream's content)
        self.content = Switch("video", clock)
        self.contents: dict[str, Source] = {}

    def publish(self, site: Site, chair: bool = False) -> None:
        self.sites[site.unit] = site
        if site.audio is not None:
            site.audio.muted = site.unit in self.muted or (not self.mutes_known and not chair)
        if chair:
            self.chair_unit = site.unit
        self._reselect()

    def unpublish(self, unit: str, site: Site | None = None) -> None:
        """Forget ``unit``'s publication (only if it is still ``site``, when given)."""
        if unit in self.sites and (site is None or self.sites[unit] is site):
            del self.sites[unit]
            self._reselect()

    def publish_content(self, unit: str, source: Source, chair: bool = False) -> None:
        """``unit`` shares a screen (a publication replaces the unit's previous one); the chair's
        may come before its camera does."""
        self.contents[unit] = source
        if chair and self.chair_unit is None:
            self.chair_unit = unit
        self._reselect_content()

    def unpublish_content(self, unit: str, source: Source | None = None) -> None:
        """``unit`` stops sharing (only if its content is still ``source``, when given)."""
        if unit in self.contents and (source is None or self.contents[unit] is source):
            del self.contents[unit]
            self._reselect_content()

    def may_share(self, unit: str) -> bool:
        """Only the chair and the floor holder show content."""
        return unit == self.chair_unit or (self.floor is not None and unit == self.floor)

    @property
    def content_unit(self) -> str | None:
        """The unit whose content the programme carries (or is switching to), if any."""
        source = self.content.pending or self.content.current
        for unit, shared in self.contents.items():
            if source is not None and shared is source:
                return unit
        return None

    def _reselect_content(self) -> None:
        shared = self.contents.get(self.floor) if self.floor else None
        if shared is None and self.chair_unit is not None:
            shared = self.contents.get(self.chair_unit)
        self.content.select(shared)

    def set_muted(self, units: frozenset[str] | set[str]) -> None:
        """The meeting's muted units (from the server): a muted site's audio published here is
        dropped before any timeline or cascade sees it, whatever its browser does."""
        self.muted = frozenset(units)
        self.mutes_known = True
        for site in self.sites.values():
            if site.audio is not None:
                site.audio.muted = site.unit in self.muted

    def set_floor(self, unit: str | None) -> None:
        self.floor = unit
        native = self.floor_audio.fanout.native
        if native is not None:  # whose own voice the floor timeline withholds changes with the floor
            native.clear()
        self._reselect()

    @property
    def on_air(self) -> str | None:
        """The unit whose video the programme shows (or is switching to)."""
        source = self.video.pending or self.video.current
        for site in self.sites.values():
            if site.sends(source):
                return site.unit
        return None

    def _reselect(self) -> None:
        floor = self.sites.get(self.floor) if self.floor else None
        chair = self.sites.get(self.chair_unit) if self.chair_unit else None
        video_site = floor if floor is not None and floor.rendition("high") is not None else chair
        self.video.select(video_site.rendition("high") if video_site is not None else None)
        self.video_low.select(video_site.rendition("low") if video_site is not None else None)
        self.chair_audio.select(chair.audio if chair is not None else None)
        if floor is not None:
            self.floor_audio.select(floor.audio if floor is not chair else None)
        else:
            self.floor_audio.select(self.upstream_floor_audio if self.floor else None)
        self._reselect_content()

    def subscribe(self) -> tuple[RelayTrack, RelayTrack, RelayTrack]:
        """Video, chair audio, floor audio for one new subscriber."""
        return self.video.fanout.subscribe(), self.chair_audio.fanout.subscribe(), self.floor_audio.fanout.subscribe()

    def close(self) -> None:
        for switch in (self.video, self.video_low, self.chair_audio, self.floor_audio, self.content):
            switch.close()
