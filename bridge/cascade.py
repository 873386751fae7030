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
from dataclasses import dataclass, field

import aiohttp
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription, sdp

from bridge import aiortc_compat, direct_send
from bridge.keyframes import KeyframeRequester
from bridge.offer import capability, rtx_ssrcs
from bridge.peers import peer_connection, pin_video, pli_sender
from bridge.programme import Site
from bridge.relay import RelayTrack, Source
from bridge.room import BridgeState
from bridge.upstream_tokens import UpstreamTokens

log = logging.getLogger("hoinghi.bridge.cascade")

UPSTREAM = "upstream"


# A publication replaced by one of the same floor holder ends this long after (the upstream bridge
# ends it as soon as the new one carries media: bridge.peers.REPLACE_WAIT at the latest).
RETIRE_AFTER = 6.0


class CascadeError(Exception):
    """The upstream refused or could not be reached."""


@dataclass(eq=False)
class Link:
    """One peer connection to the upstream bridge (play or publish) and its DELETE URL."""

    pc: RTCPeerConnection
    location: str
    sources: list[Source] = field(default_factory=list)
    tracks: list[RelayTrack] = field(default_factory=list)


async def _exchange(url: str, token: str, pc: RTCPeerConnection) -> str:
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http, http.post(url, data=pc.localDescription.sdp.encode(),
                                                          headers=headers) as resp:
        body = await resp.text()
        if resp.status != 201:
            raise CascadeError(f"upstream refused {url}: {resp.status} {body}")
        location = resp.headers.get("Location", "")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
    aiortc_compat.mark_passthrough(pc)
    return location


async def play_upstream(state: BridgeState, meeting: int, token: str) -> Link:
    """Play the upstream's programme of ``meeting`` and make it the local programme's base."""
    base = state.config.upstream_url.rstrip("/")
    pc = peer_connection(state)
    link = Link(pc, "")
    try:
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        link.location = await _exchange(f"{base}/meetings/{meeting}/whep", token, pc)
    except BaseException:
        await pc.close()
        raise
    rtx = rtx_ssrcs(sdp.SessionDescription.parse(pc.remoteDescription.sdp))
    room = state.room(meeting)
    video = audio = floor_audio = None
    for transceiver in pc.getTransceivers():
        track = transceiver.receiver.track
        if track is None:
            continue
        codec = aiortc_compat.negotiated_codecs(transceiver)[0]
        if transceiver.kind == "video":
            keyframes = KeyframeRequester(pli_sender(transceiver.receiver, rtx), state.config.keyframe_interval)
            video = Source("video", codec.mimeType, keyframes, label=f"{UPSTREAM}/video")
            video.start(track)
            link.sources.append(video)
            # The meeting's codec here is the upstream's, whatever was pinned locally before
            pin_video(state, room, capability(codec))
        else:
            source = Source("audio", codec.mimeType, label=f"{UPSTREAM}/audio")
            source.start(track)
            link.sources.append(source)
            if audio is None:
                audio = source
            else:
                floor_audio = source
    room.programme.upstream_floor_audio = floor_audio
    room.programme.publish(Site(UPSTREAM, video, audio), chair=True)
    return link


async def publish_upstream(state: BridgeState, meeting: int, site: Site, token: str) -> Link:
    """Publish a local site's stream (it holds the floor) to the upstream bridge.

    Its sound goes up as the local programme's floor-audio timeline, not as the site's source: the
    timeline moves from one source to the next without a gap (the site replacing its microphone-only
    publication by camera and microphone), so a publication up there never goes silent because the
    source it started with ended first. A muted site's source feeds that timeline nothing."""
    base = state.config.upstream_url.rstrip("/")
    pc = peer_connection(state)
    link = Link(pc, "")
    floor_audio = state.room(meeting).programme.floor_audio
    try:
        for source in (site.video, site.audio):
            if source is None:
                continue
            track = (floor_audio if source is site.audio else source).fanout.subscribe()
            link.tracks.append(track)
            transceiver = pc.addTransceiver(track, direction="sendonly")
            direct_send.use_direct_send(transceiver.sender)
            codecs = RTCRtpSender.getCapabilities(source.kind).codecs
            transceiver.setCodecPreferences([c for c in codecs if c.mimeType.lower() in
                                             (source.mime_type.lower(), "video/rtx")])
            if source.kind == "video":
                aiortc_compat.on_keyframe_request(transceiver.sender, track.request_keyframe)
        link.location = await _exchange(f"{base}/meetings/{meeting}/whip", token, pc)
        for transceiver in pc.getTransceivers():
            if isinstance(transceiver.sender.track, RelayTrack):
                transceiver.sender.track.codec = aiortc_compat.negotiated_codecs(transceiver)[0].mimeType.lower()
    except BaseException:
        for track in link.tracks:
            track.stop()
        await pc.close()
        raise
    return link


async def close_link(link: Link, token: str | None, base_url: str) -> None:
    """End a link here, and upstream when there is a token to say so (else the upstream ends it
    itself once nothing arrives)."""
    for track in link.tracks:
        track.stop()
    for source in link.sources:
        await source.close()
    if link.location and token:
        try:
            async with aiohttp.ClientSession() as http, http.delete(
                    f"{base_url.rstrip('/')}{link.location}", headers={"Authorization": f"Bearer {token}"}):
                pass
        except aiohttp.ClientError:
            log.warning("could not end upstream session %s", link.location)
    await link.pc.close()


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
        self._changing = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()  # replaced publications ending after RETIRE_AFTER

    async def _token(self, unit: str) -> str:
        return await self.tokens.token(self.meeting, unit, self.upstream_unit)

    async def _end(self, link: Link, unit: str) -> None:
        """Close ``link``; upstream too, with a token at hand or one the server gives quickly."""
        token = self.tokens.cached(self.meeting, unit, self.upstream_unit)
        if token is None:
            try:
                token = await asyncio.wait_for(self._token(unit), 2.0)
            except Exception as exc:  # the server is away: the upstream ends the link by itself
                log.info("cascade: no token to end the upstream link of %s (%s)", unit, exc)
        await close_link(link, token, self.state.config.upstream_url)

    async def start(self) -> None:
        self.play = await play_upstream(self.state, self.meeting, await self._token(self.state.config.unit))

    async def floor_changed(self) -> None:
        """Publish the floor holder upstream if it publishes here; stop publishing otherwise.

        Make before break: a new publication (another floor holder, or the same site moving from
        its microphone alone to camera and microphone) is up before the old one ends, so the
        upstream never goes a handshake without the floor holder's sound. One change at a time."""
        async with self._changing:
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
        for retiring in list(self._retiring):
            retiring.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        if self.play is not None:
            self.state.room(self.meeting).programme.unpublish(UPSTREAM)
            await self._end(self.play, self.state.config.unit)
            self.play = None
