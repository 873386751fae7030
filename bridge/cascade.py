"""Cascade: a bridge with an upstream plays the upstream's programme over WHEP (as a client) and
fans it out to its own sites; when the floor holder is one of its own sites, it publishes that
site upstream over WHIP. Keyframe requests climb the tree, throttled at every tier.

The upstream's programme becomes one site of the local programme (the "upstream" site, in the
chair's place): locally the floor holder's own stream is shown when it publishes here, the
upstream's programme otherwise.
"""

from __future__ import annotations

import asyncio
import logging

from aiortc import RTCRtpSender, sdp

from bridge import aiortc_compat, direct_send
from bridge.cascade_content import play_upstream_content, publish_content_upstream
from bridge.keyframes import KeyframeRequester
from bridge.offer import capability, rtx_ssrcs
from bridge.peers import peer_connection, pin_video, pli_sender
from bridge.programme import Site
from bridge.relay import RelayTrack, Source
from bridge.room import BridgeState
from bridge.upstream_link import UPSTREAM, Link, _exchange, close_link
from bridge.upstream_tokens import UpstreamTokens

log = logging.getLogger("hoinghi.bridge.cascade")



# A publication replaced by one of the same floor holder ends this long after (the upstream bridge
# ends it as soon as the new one carries media: bridge.peers.REPLACE_WAIT at the latest).
RETIRE_AFTER = 6.0
CONTENT_RETRY = (0.0, 1.0, 2.0, 4.0, 8.0)  # seconds before each try to play the upstream's content


async def play_upstream(state: BridgeState, meeting: int, token: str) -> Link:
    """Play the upstream's programme of ``meeting`` and make it the local programme's base."""
    base = state.config.upstream_url.rstrip("/")
    pc = peer_connection(state)
    link = Link(pc, "")
    try:
        pc.addTransceiver("video", direction="recvonly")  # the high rendition
        pc.addTransceiver("video", direction="recvonly")  # the low one (issue #16)
        pc.addTransceiver("audio", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        link.location = await _exchange(f"{base}/meetings/{meeting}/whep", token, pc)
    except BaseException:
        await pc.close()
        raise
    rtx = rtx_ssrcs(sdp.SessionDescription.parse(pc.remoteDescription.sdp))
    room = state.room(meeting)
    audio = floor_audio = None
    renditions: list[Source] = []
    for transceiver in pc.getTransceivers():
        track = transceiver.receiver.track
        if track is None:
            continue
        codec = aiortc_compat.negotiated_codecs(transceiver)[0]
        if transceiver.kind == "video":
            keyframes = KeyframeRequester(pli_sender(transceiver.receiver, rtx), state.config.keyframe_interval)
            name = "video" if not renditions else "video-low"
            video = Source("video", codec.mimeType, keyframes, label=f"{UPSTREAM}/{name}")
            video.start(track)
            link.sources.append(video)
            if not renditions:
                # The meeting's codec here is the upstream's, whatever was pinned locally before
                pin_video(state, room, capability(codec))
            renditions.append(video)
        else:
            source = Source("audio", codec.mimeType, label=f"{UPSTREAM}/audio")
            source.start(track)
            link.sources.append(source)
            if audio is None:
                audio = source
            else:
                floor_audio = source
    room.programme.upstream_floor_audio = floor_audio
    high = renditions[0] if renditions else None
    low = renditions[1] if len(renditions) > 1 else None
    room.programme.publish(Site(UPSTREAM, high, audio, low), chair=True)
    return link


async def publish_upstream(state: BridgeState, meeting: int, site: Site, token: str, thumbnail: bool = False) -> Link:
    """Publish a local site's stream (it holds the floor) to the upstream bridge.

    Its sound goes up as the local programme's floor-audio timeline, not as the site's source: the
    timeline moves from one source to the next without a gap (the site replacing its microphone-only
    publication by camera and microphone), so a publication up there never goes silent because the
    source it started with ended first. A muted site's source feeds that timeline nothing.

    Both renditions of its camera go up (the high one, then the low one). A ``thumbnail`` is this
    bridge's own room shown in the upstream's mosaic while it does not hold the floor: its low
    rendition and its own microphone (for a preview), with ``?thumbnail=1``."""
    base = state.config.upstream_url.rstrip("/")
    pc = peer_connection(state)
    link = Link(pc, "")
    floor_audio = state.room(meeting).programme.floor_audio
    if thumbnail:
        sources = [site.rendition("low"), site.audio]
    else:
        sources = [site.rendition("high"), site.video_low if site.video is not None else None, site.audio]
    try:
        for source in sources:
            if source is None:
                continue
            track = (floor_audio if source is site.audio and not thumbnail else source).fanout.subscribe()
            link.tracks.append(track)
            transceiver = pc.addTransceiver(track, direction="sendonly")
            direct_send.use_direct_send(transceiver.sender)
            codecs = RTCRtpSender.getCapabilities(source.kind).codecs
            transceiver.setCodecPreferences([c for c in codecs if c.mimeType.lower() in
                                             (source.mime_type.lower(), "video/rtx")])
            if source.kind == "video":
                aiortc_compat.on_keyframe_request(transceiver.sender, track.request_keyframe)
        query = "?thumbnail=1" if thumbnail else ""
        link.location = await _exchange(f"{base}/meetings/{meeting}/whip{query}", token, pc)
        for transceiver in pc.getTransceivers():
            if isinstance(transceiver.sender.track, RelayTrack):
                transceiver.sender.track.codec = aiortc_compat.negotiated_codecs(transceiver)[0].mimeType.lower()
    except BaseException:
        for track in link.tracks:
            track.stop()
        await pc.close()
        raise
    return link


class Uplink:
    """The cascade of one meeting: plays the upstream's programme, and publishes the local floor
    holder upstream while it holds the floor, with ``bridge`` tokens of the upstream that the server
    issues (``tokens``): this bridge's own key mints none for another bridge."""

    def __init__(self, state: BridgeState, meeting: int, upstream_unit: str, tokens: UpstreamTokens) -> None:
        self.state = state
        self.tokens = tokens
        self.meeting = meeting
        self.upstream_unit = upstream_unit
        self.play: Link | None = None
        self.publish: Link | None = None
        self.published_unit: str | None = None
        self.published_site: Site | None = None
        # This bridge's own room in the upstream's mosaic (issue #16), while not published as the floor
        self.thumbnail: Link | None = None
        self.thumbnail_site: Site | None = None
        # Screen sharing: the upstream's content played here, a local floor holder's published up
        self.content_play: Link | None = None
        self.content_publish: Link | None = None
        self.content_unit: str | None = None
        self.content_source: Source | None = None
        self._content_task: asyncio.Task[None] | None = None
        self._changing = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()  # replaced publications ending after RETIRE_AFTER

    async def _token(self, unit: str) -> str:
        return await self.tokens.token(self.meeting, unit, self.upstream_unit)

    async def _end(self, link: Link, unit: str) -> None:
        """Close ``link``; upstream too, with a token at hand or one the server gives quickly."""
        log.info("cascade: %s's link %s of meeting %s ends", unit, link.location or "(not answered)", self.meeting)
        token = self.tokens.cached(self.meeting, unit, self.upstream_unit)
        try:
            if token is None:
                try:
                    token = await asyncio.wait_for(self._token(unit), 2.0)
                except Exception as exc:  # the server is away: the upstream ends the link by itself
                    log.info("cascade: no token to end the upstream link of %s (%s)", unit, exc)
        finally:  # closed here even when this is cut short (a bridge shutting down)
            await close_link(link, token, self.state.config.upstream_url)

    async def start(self) -> None:
        self.play = await play_upstream(self.state, self.meeting, await self._token(self.state.config.unit))
        # The upstream's content is played beside, in the background: the cascade (and every
        # site's programme) never waits for it, and its handshake does not hold the programme's.
        self._content_task = asyncio.get_running_loop().create_task(self._play_content(),
                                                                    name=f"content-{self.meeting}")

    async def _play_content(self) -> None:
        """Play the upstream's content until it plays (the programme goes on without it meanwhile)."""
        for delay in CONTENT_RETRY:
            await asyncio.sleep(delay)
            try:
                self.content_play = await play_upstream_content(self.state, self.meeting,
                                                                await self._token(self.state.config.unit))
                return
            except Exception as exc:
                log.warning("cascade: could not play the upstream's content of meeting %s: %s", self.meeting, exc)

    async def floor_changed(self) -> None:
        """Publish the floor holder upstream if it publishes here; stop publishing otherwise.

        Make before break: a new publication (another floor holder, or the same site moving from
        its microphone alone to camera and microphone) is up before the old one ends, so the
        upstream never goes a handshake without the floor holder's sound. One change at a time."""
        async with self._changing:
            try:
                await self._floor_changed()
            finally:
                try:
                    await self._thumbnail_changed()
                finally:
                    await self._content_changed()

    async def _thumbnail_changed(self) -> None:
        """Show this bridge's own room in the upstream's mosaic while it sends video here and is not
        published up as the floor holder (then the floor publication carries it)."""
        own = self.state.config.unit
        site = self.state.room(self.meeting).programme.sites.get(own)
        if site is None or site.rendition("low") is None or self.published_unit == own:
            site = None
        if site is self.thumbnail_site and (site is None) == (self.thumbnail is None):
            return
        old, self.thumbnail, self.thumbnail_site = self.thumbnail, None, None
        if old is not None:
            await self._end(old, own)
        if site is not None:
            try:
                self.thumbnail = await publish_upstream(self.state, self.meeting, site, await self._token(own),
                                                        thumbnail=True)
                self.thumbnail_site = site
            except Exception as exc:  # the mosaic goes without it; the programme is not touched
                log.warning("cascade: could not show %s in the upstream's mosaic: %s", own, exc)

    async def _content_changed(self) -> None:
        """Publish the local floor holder's shared screen upstream while it shares; else stop."""
        room = self.state.room(self.meeting)
        floor = room.floor
        source = room.programme.contents.get(floor) if floor and floor != UPSTREAM else None
        if source is not None and source is self.content_source and not source.ended.is_set():
            return
        old, old_unit = self.content_publish, self.content_unit
        self.content_publish, self.content_unit, self.content_source = None, None, None
        if old is not None and old_unit is not None:
            await self._end(old, old_unit)
        if source is not None and floor is not None and not source.ended.is_set():
            try:
                self.content_publish = await publish_content_upstream(self.state, self.meeting, source,
                                                                      await self._token(floor))
                self.content_unit, self.content_source = floor, source
            except Exception as exc:
                log.warning("cascade: could not share %s's screen upstream: %s", floor, exc)

    async def _floor_changed(self) -> None:
        room = self.state.room(self.meeting)
        site = room.programme.sites.get(room.floor) if room.floor else None
        if site is not None and room.floor == self.published_unit and site is self.published_site:
            return
        old, old_unit = self.publish, self.published_unit
        self.publish, self.published_unit, self.published_site = None, None, None
        try:
            if site is not None and room.floor is not None and room.floor != UPSTREAM:
                self.publish = await publish_upstream(self.state, self.meeting, site,
                                                      await self._token(room.floor))
                self.published_unit, self.published_site = room.floor, site
        finally:
            if old is not None and old_unit is not None:
                if old_unit == self.published_unit:
                    # The same floor holder published again: the upstream ends the old publication
                    # itself once the new one carries media; ours goes only after that.
                    retiring = asyncio.get_running_loop().create_task(self._retire(old, old_unit),
                                                                      name=f"retire-{old_unit}")
                    self._retiring.add(retiring)
                    retiring.add_done_callback(self._retiring.discard)
                else:
                    await self._end(old, old_unit)

    async def _retire(self, link: Link, unit: str) -> None:
        try:
            await asyncio.sleep(RETIRE_AFTER)
        finally:
            await self._end(link, unit)

    async def republish(self) -> None:
        """The upstream ended our publication (it had seen nothing for a while): publish again."""
        async with self._changing:
            await self._stop_publishing()
        await self.floor_changed()

    async def _stop_publishing(self) -> None:
        if self.publish is not None and self.published_unit is not None:
            await self._end(self.publish, self.published_unit)
        self.publish = None
        self.published_unit = None
        self.published_site = None

    async def close(self) -> None:
        async with self._changing:
            await self._stop_publishing()
            if self.thumbnail is not None:
                await self._end(self.thumbnail, self.state.config.unit)
            self.thumbnail = self.thumbnail_site = None
            if self.content_publish is not None and self.content_unit is not None:
                await self._end(self.content_publish, self.content_unit)
            self.content_publish = self.content_unit = self.content_source = None
        for retiring in list(self._retiring):
            retiring.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        if self.play is not None:
            self.state.room(self.meeting).programme.unpublish(UPSTREAM)
            await self._end(self.play, self.state.config.unit)
            self.play = None
        if self._content_task is not None:
            self._content_task.cancel()
            await asyncio.gather(self._content_task, return_exceptions=True)
        if self.content_play is not None:
            for source in self.content_play.sources:
                self.state.room(self.meeting).programme.unpublish_content(UPSTREAM, source)
            await self._end(self.content_play, self.state.config.unit)
            self.content_play = None
