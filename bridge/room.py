"""What a bridge holds: its configuration, one :class:`Room` per meeting, the peer sessions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiortc import RTCPeerConnection
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

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
    keyframe_interval: float = 0.3  # seconds between keyframe requests to one publisher


@dataclass(eq=False)
class PeerSession:
    """One WHIP (publish) or WHEP (play) peer connection."""

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
    answer: str = ""
    closed: bool = False


class Room:
    """One meeting on this bridge: its programme, its pinned video codec, its floor."""

    def __init__(self, meeting: int) -> None:
        self.meeting = meeting
        self.programme = Programme()
        self.video_codec: RTCRtpCodecCapability | None = None
        self.publishers: dict[str, PeerSession] = {}

    @property
    def floor(self) -> str | None:
        return self.programme.floor

    def set_floor(self, unit: str | None) -> None:
        """The server moved the floor (control channel)."""
        self.programme.set_floor(unit)

    def on_air(self) -> tuple[str | None, bool, bool]:
        """(floor holder, its picture is in the programme, its sound is) — None while nobody holds
        the floor. Granted is not on air: this says when the floor holder's media arrived."""
        programme = self.programme
        unit = programme.floor
        site = programme.sites.get(unit) if unit else None
        if site is None:
            return unit, False, False
        video = site.video is not None and programme.video.current is site.video
        audio = site.audio is not None and programme.floor_audio.current is site.audio and not site.audio.muted
        return unit, video, audio

    def set_muted(self, units: set[str] | frozenset[str]) -> None:
        """The server's list of muted sites changed (control channel)."""
        self.programme.set_muted(units)


SessionHook = Callable[[PeerSession], Awaitable[None]]


class BridgeState:
    def __init__(self, config: BridgeConfig) -> None:
        self.config = config
        self.rooms: dict[int, Room] = {}
        self.sessions: dict[str, PeerSession] = {}
        # Told of every session that starts / ends (bridge.link: roll call, cascade, health).
        self.on_open: list[SessionHook] = []
        self.on_close: list[SessionHook] = []

    async def opened(self, session: PeerSession) -> None:
        for hook in self.on_open:
            try:
                await hook(session)
            except Exception:
                log.exception("session hook failed (%s %s)", session.kind, session.unit)

    async def closed(self, session: PeerSession) -> None:
        for hook in self.on_close:
            try:
                await hook(session)
            except Exception:
                log.exception("session hook failed (%s %s)", session.kind, session.unit)

    def room(self, meeting: int) -> Room:
        if meeting not in self.rooms:
            self.rooms[meeting] = Room(meeting)
        return self.rooms[meeting]

    async def close_session(self, session: PeerSession) -> None:
        if session.closed:
            return
        session.closed = True
        self.sessions.pop(session.id, None)
        room = self.rooms.get(session.meeting)
        if room is not None and session.site is not None:
            room.programme.unpublish(session.unit, session.site)
            if room.publishers.get(session.unit) is session:
                del room.publishers[session.unit]
        for track in session.tracks:
            track.stop()
        await asyncio.gather(*(s.close() for s in session.sources), return_exceptions=True)
        await session.pc.close()
        await self.closed(session)
        log.info("session %s closed (%s %s, meeting %s)", session.id, session.kind, session.unit, session.meeting)

    async def close(self) -> None:
        await asyncio.gather(*(self.close_session(s) for s in list(self.sessions.values())),
                             return_exceptions=True)
        for room in self.rooms.values():
            room.programme.close()
