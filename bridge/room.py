"""What a bridge holds: its configuration, one :class:`Room` per meeting, its peers."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

from bridge.adaptation import Adaptation, Adapter
from bridge.programme import Programme, Site
from bridge.relay import RelayTrack, Source
from bridge.speaking import SpeakingMeter

log = logging.getLogger("hoinghi.bridge.room")


@dataclass(frozen=True)
class BridgeConfig:
    unit: str
    key: bytes = field(repr=False)
    server_url: str = ""
    upstream_url: str = ""
    ice_servers: tuple[str, ...] = ()
    token: str = field(default="", repr=False)  # machine token (scope "bridge") for the server's /ws
    # The upstream bridge's key, for a cascade without a server (tests, a lab): with a server, the
    # upstream's tokens come from it over the control channel (bridge.upstream_tokens).
    upstream_key: bytes = field(default=b"", repr=False)
    keyframe_interval: float = 0.3  # seconds between keyframe requests to one publisher
    # Recording (bridge.recorder): a folder enables it; with an upstream, only when the chair names it
    recordings_dir: str = field(default_factory=lambda: os.environ.get("HOINGHI_BRIDGE_RECORDINGS_DIR", ""))
    recording_segment_seconds: float = field(
        default_factory=lambda: float(os.environ.get("HOINGHI_BRIDGE_RECORDING_SEGMENT_SECONDS", "180")))
    recording_min_free_mb: int = field(
        default_factory=lambda: int(os.environ.get("HOINGHI_BRIDGE_RECORDING_MIN_FREE_MB", "1024")))


@dataclass(eq=False)
class Peer:
    """One WHIP (publish) or WHEP (play) peer connection and what it carries."""

    id: str
    kind: str  # "publish" or "play"
    meeting: int
    unit: str
    role: str
    pc: RTCPeerConnection
    sources: list[Source] = field(default_factory=list)
    tracks: list[RelayTrack] = field(default_factory=list)
    site: Site | None = None
    meter: SpeakingMeter | None = None  # a publisher's microphone: who is speaking (RFC 6464 levels)
    video_codec: str | None = None  # the video codec it negotiated (lower-case mime type), if any video
    answer: str = ""
    closed: bool = False
    adaptation: Adaptation | None = None  # a programme player's video: the rendition it gets (issue #16)
    preview: str | None = None  # a player of one site's own video and sound (thumbnail, preview)
    content: bool = False  # a shared screen (``?content=1``): published, or played, beside the programme


class Room:
    """One meeting on this bridge: its programme, its video codec, its floor.

    The video codec is pinned by what is actually published (``bridge.peers.pin_video``): the
    first publication whose video arrives here, or, on a bridge with an upstream, the codec of the
    upstream's programme (which replaces a local one). None until then: players are answered with
    their own first codec meanwhile, and ended at the pin if that is another."""

    def __init__(self, meeting: int) -> None:
        self.meeting = meeting
        self.programme = Programme()
        self.video_codec: RTCRtpCodecCapability | None = None
        self.codec_pinned = asyncio.Event()  # set once video_codec is
        self.publishers: dict[str, Peer] = {}
        self.content_publishers: dict[str, Peer] = {}  # screens shared here, by unit
        # Ends a peer (set by BridgeState): a shared screen ends when its sharer loses the floor
        self.end_peer: Callable[[Peer, str], None] | None = None

    @property
    def floor(self) -> str | None:
        return self.programme.floor

    def set_floor(self, unit: str | None) -> None:
        """The server moved the floor (control channel). A site that shared its screen and no longer
        holds the floor stops sharing: its content publication ends."""
        self.programme.set_floor(unit)
        for peer in list(self.content_publishers.values()):
            if peer.role != "chair" and not self.programme.may_share(peer.unit) and self.end_peer is not None:
                self.end_peer(peer, "its site no longer holds the floor")

    def on_air(self) -> tuple[str | None, bool, bool]:
        """(floor holder, its picture is in the programme, its sound is) — None while nobody holds
        the floor. Granted is not on air: this says when the floor holder's media arrived."""
        programme = self.programme
        unit = programme.floor
        site = programme.sites.get(unit) if unit else None
        if site is None:
            return unit, False, False
        video = site.sends(programme.video.current)
        audio = site.audio is not None and programme.floor_audio.current is site.audio and not site.audio.muted
        return unit, video, audio

    def set_muted(self, units: set[str] | frozenset[str]) -> None:
        """The server's list of muted sites changed (control channel)."""
        self.programme.set_muted(units)


PeerHook = Callable[[Peer], Awaitable[None]]
MUTES_WAIT = 3.0  # seconds a bridge with a server waits for the list of muted sites before it trusts none


class BridgeState:
    def __init__(self, config: BridgeConfig) -> None:
        self.config = config
        self.rooms: dict[int, Room] = {}
        self.peers: dict[str, Peer] = {}
        # Told of every peer that starts / ends (bridge.link: roll call, cascade, health).
        self.on_open: list[PeerHook] = []
        self.on_close: list[PeerHook] = []
        # Awaited before a peer of a meeting whose video codec is not pinned yet is answered (a
        # bridge with an upstream waits for the upstream's codec: bridge.link).
        self.before_answer: Callable[[int], Awaitable[None]] | None = None
        self.adapter = Adapter()  # chooses each subscriber's rendition (bridge.adaptation)
        self._tasks: set[asyncio.Task[None]] = set()  # background work, cancelled by close()
        self._ending: set[asyncio.Task[None]] = set()  # peers being closed in the background, awaited by close()

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``work`` in the background for as long as the bridge runs: kept here, cancelled and
        awaited by :meth:`close` (so it must clean up after itself when cancelled)."""
        _keep(self._tasks, work, name)

    def end_later(self, peer: Peer, why: str) -> None:
        """Close ``peer`` without waiting for it (from a callback, or not to hold up a request);
        :meth:`close` waits for it to finish rather than cut it short."""
        if not peer.closed:
            _keep(self._ending, self.close_peer(peer, why), f"end-peer-{peer.id}")

    async def opened(self, peer: Peer) -> None:
        for hook in self.on_open:
            try:
                await hook(peer)
            except Exception:
                log.exception("peer hook failed (%s %s)", peer.kind, peer.unit)

    async def closed(self, peer: Peer) -> None:
        for hook in self.on_close:
            try:
                await hook(peer)
            except Exception:
                log.exception("peer hook failed (%s %s)", peer.kind, peer.unit)

    def room(self, meeting: int) -> Room:
        if meeting not in self.rooms:
            room = self.rooms[meeting] = Room(meeting)
            room.end_peer = self.end_later
            if self.config.server_url:
                # Sites' sound waits for the server's list of muted sites (the roll-call snapshot the
                # control channel asks for at once); a server away this long: nobody is muted here.
                room.programme.mutes_known = False
                asyncio.get_running_loop().call_later(MUTES_WAIT, self._mutes_unknown, room)
        return self.rooms[meeting]

    @staticmethod
    def _mutes_unknown(room: Room) -> None:
        if not room.programme.mutes_known:
            log.warning("meeting %s: no list of muted sites from the server yet: sites are heard", room.meeting)
            room.set_muted(room.programme.muted)

    async def close_peer(self, peer: Peer, why: str) -> None:
        """End ``peer``; ``why`` goes into the log line that says so."""
        if peer.closed:
            return
        peer.closed = True
        self.peers.pop(peer.id, None)
        room = self.rooms.get(peer.meeting)
        if room is not None and peer.content and peer.kind == "publish":
            for source in peer.sources:
                room.programme.unpublish_content(peer.unit, source)
            if room.content_publishers.get(peer.unit) is peer:
                del room.content_publishers[peer.unit]
        if room is not None and peer.site is not None:
            room.programme.unpublish(peer.unit, peer.site)
            if room.publishers.get(peer.unit) is peer:
                del room.publishers[peer.unit]
            # Its previews showed this publication: they end (a page asks again, and gets the new one)
            for other in list(self.peers.values()):
                if other.preview == peer.unit and other.meeting == peer.meeting:
                    self.end_later(other, f"the publication it previewed ({peer.id}) ended")
        for track in peer.tracks:
            track.stop()
        await asyncio.gather(*(s.close() for s in peer.sources), return_exceptions=True)
        await peer.pc.close()
        await self.closed(peer)
        log.info("peer %s closed (%s %s, meeting %s): %s", peer.id, peer.kind, peer.unit, peer.meeting, why)

    async def close(self) -> None:
        """Shut the bridge's media down: background work cancelled (a replacement still waiting for
        media closes what it replaces), then every peer closed, those already closing awaited."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(self.close_peer(p, "the bridge stops") for p in list(self.peers.values())),
                             return_exceptions=True)
        while self._ending:
            await asyncio.gather(*list(self._ending), return_exceptions=True)
        await self.adapter.close()
        for room in self.rooms.values():
            room.programme.close()


def _keep(tasks: set[asyncio.Task[None]], work: Coroutine[Any, Any, None], name: str) -> None:
    task = asyncio.get_running_loop().create_task(work, name=name)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
