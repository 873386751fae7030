"""Real aiortc peers for the media tests: a publisher whose encoder makes keyframes only when
asked (so a late joiner can only be served by a forwarded keyframe request), a player that decodes
what it receives, and WHIP/WHEP over HTTP."""

from __future__ import annotations

import asyncio
import fractions
import itertools
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import av
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack

from bridge import aiortc_compat
from sessions import join_tokens

KEY = b"khoa-thu-nghiem-cho-cau-truyen-hinh-0123456789"
VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
STEP = 10.0  # seconds: the bound of every wait in these tests


async def until(predicate: Callable[[], bool], within: float = STEP, what: str = "a condition") -> None:
    """Poll ``predicate`` until it holds; fail with ``what`` after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    for _ in itertools.count():
        if predicate():
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(0.02)


def peer_connection() -> RTCPeerConnection:
    """A peer connection with no STUN server (aiortc would otherwise ask Google's), every track on
    one transport (max-bundle, as WHIP/WHEP require: see ``bridge.peers.peer_connection``)."""
    return RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))


def token(bridge: str, unit: str, role: str = "site", meeting: int = 1, key: bytes = KEY,
          ttl: timedelta = timedelta(minutes=5), view: str | None = None) -> str:
    return join_tokens.issue(key, meeting=meeting, unit=unit, role=role, bridge=bridge, now=datetime.now(UTC),
                             ttl=ttl, view=view)


class EncodedVideoTrack(MediaStreamTrack):
    """A camera that yields encoded packets (VP8 or H.264) at ``fps``: one keyframe at the start,
    then keyframes only when :meth:`request_keyframe` is called (a natural interval of hours)."""

    kind = "video"

    def __init__(self, codec: str = "vp8", width: int = 160, height: int = 120, fps: int = 30,
                 bitrate: int = 300_000) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self.mime_type = {"vp8": "video/VP8", "h264": "video/H264"}[codec]
        name = {"vp8": "libvpx", "h264": "libx264"}[codec]
        self.codec = av.CodecContext.create(name, "w")
        self.codec.width, self.codec.height = width, height
        self.codec.pix_fmt = "yuv420p"
        self.codec.bit_rate = bitrate
        self.codec.time_base = fractions.Fraction(1, fps)
        self.codec.framerate = fractions.Fraction(fps, 1)
        self.codec.gop_size = 1_000_000
        if codec == "vp8":
            self.codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        else:
            self.codec.options = {"tune": "zerolatency", "preset": "ultrafast"}
            self.codec.profile = "Baseline"
        self._index = 0
        self._start: float | None = None
        self._force = True
        self.keyframes = 0
        self.keyframe_requests = 0
        self.sent_pts: list[int] = []  # the pts (90 kHz) of every picture it gave its sender, in order

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1
        self._force = True

    def _frame(self) -> av.VideoFrame:
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        shade = (self._index * 3) % 200 + 20
        for i, plane in enumerate(frame.planes):
            value = shade if i == 0 else 128
            plane.update(bytes([value]) * plane.buffer_size)
        frame.pts = self._index
        frame.time_base = fractions.Fraction(1, self.fps)
        return frame

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        now = time.monotonic()
        due = self._start + self._index / self.fps
        if due > now:
            await asyncio.sleep(due - now)
        else:
            if now - due > 1 / self.fps:  # fell behind: skip the missed frames, as a camera would
                self._index = int((now - self._start) * self.fps)
            await asyncio.sleep(0)  # never starve the event loop
        while True:
            frame = self._frame()
            if self._force:
                frame.pict_type = av.video.frame.PictureType.I
            else:
                frame.pict_type = av.video.frame.PictureType.NONE
            data = b"".join(bytes(p) for p in self.codec.encode(frame))
            pts = self._index * 90000 // self.fps
            self._index += 1
            if data:
                break
        if self._force:
            self.keyframes += 1
            self._force = False
        packet = av.Packet(data)
        packet.pts = pts
        self.sent_pts.append(pts)
        packet.time_base = VIDEO_TIME_BASE
        return packet


@dataclass
class Publisher:
    pc: RTCPeerConnection
    video: EncodedVideoTrack | None
    location: str


async def whip(base_url: str, meeting: int, tok: str, video: EncodedVideoTrack | None,
               audio: bool | MediaStreamTrack = True, low: EncodedVideoTrack | None = None,
               query: str = "") -> Publisher:
    """Publish ``video`` (forwarded as encoded packets) and a microphone (Opus): ``audio`` itself
    when it is a track, a silent one when True; ``low``: a second video m-line, the low rendition."""
    pc = peer_connection()
    try:
        for camera in (video, low):
            if camera is None:
                continue
            transceiver = pc.addTransceiver(camera, direction="sendonly")
            # offer only the codec this camera encodes (plus RTX), as a browser sending it would
            transceiver.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                                             if c.mimeType in (camera.mime_type, "video/rtx")])
            aiortc_compat.on_keyframe_request(transceiver.sender, camera.request_keyframe)
        if isinstance(audio, MediaStreamTrack):
            pc.addTransceiver(audio, direction="sendonly")
        elif audio:
            pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        status, answer, location = await post_sdp(f"{base_url}/meetings/{meeting}/whip{query}", tok,
                                                  pc.localDescription.sdp)
        assert status == 201, answer
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        aiortc_compat.mark_passthrough(pc, kinds=("video",))
    except BaseException:
        await pc.close()
        raise
    return Publisher(pc, video, location)


@dataclass
class Player:
    """Plays the programme and decodes it (this peer connection is not pass-through)."""

    pc: RTCPeerConnection
    answer: str = ""
    location: str = ""
    started: float = 0.0
    frames: list[tuple[float, int, int, int]] = field(default_factory=list)  # (time, width, height, pts)
    audio_frames: int = 0
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    first_frame: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_frames(self, count: int, within: float = STEP) -> None:
        await until(lambda: len(self.frames) >= count, within, f"{count} decoded frames (have {len(self.frames)})")

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.pc.close()


async def drain(track: MediaStreamTrack, on_frame: Callable[[object], None]) -> None:
    """Hand every frame ``track`` yields to ``on_frame`` until the track ends."""
    try:
        while True:
            on_frame(await track.recv())
    except MediaStreamError:
        pass


async def play_offer(pc: RTCPeerConnection, base_url: str, meeting: int, tok: str, query: str = ""
                     ) -> tuple[str, str]:
    """POST ``pc``'s local offer to the meeting's WHEP endpoint and apply the answer: (answer, Location)."""
    status, answer, location = await post_sdp(f"{base_url}/meetings/{meeting}/whep{query}", tok,
                                              pc.localDescription.sdp)
    assert status == 201, answer
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return answer, location


async def whep(base_url: str, meeting: int, tok: str, audio_tracks: int = 2, query: str = "") -> Player:
    pc = peer_connection()
    player = Player(pc)

    def on_frame(frame: object) -> None:
        if isinstance(frame, av.VideoFrame):
            player.frames.append((time.monotonic(), frame.width, frame.height, int(frame.pts or 0)))
            player.first_frame.set()
        else:
            player.audio_frames += 1

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        player.tasks.append(asyncio.ensure_future(drain(track, on_frame)))

    try:
        pc.addTransceiver("video", direction="recvonly")
        for _ in range(audio_tracks):
            pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        player.started = time.monotonic()
        player.answer, player.location = await play_offer(pc, base_url, meeting, tok, query)
    except BaseException:
        await player.close()
        raise
    return player


async def close_peers(*peers: Publisher | Player) -> None:
    for peer in peers:
        if isinstance(peer, Player):
            await peer.close()
        else:
            await peer.pc.close()


async def post_sdp(url: str, tok: str | None, sdp: str, content_type: str = "application/sdp"
                   ) -> tuple[int, str, str]:
    headers = {"Content-Type": content_type}
    if tok is not None:
        headers["Authorization"] = f"Bearer {tok}"
    async with aiohttp.ClientSession() as http, http.post(url, data=sdp.encode(), headers=headers) as resp:
        return resp.status, await resp.text(), resp.headers.get("Location", "")


async def offer_sdp(kinds: tuple[str, ...] = ("video", "audio"), direction: str = "sendonly") -> str:
    """A real aiortc offer (for tests that alter it before sending)."""
    pc = peer_connection()
    try:
        for kind in kinds:
            pc.addTransceiver(kind, direction=direction)
        await pc.setLocalDescription(await pc.createOffer())
        return pc.localDescription.sdp
    finally:
        await pc.close()


def lose_next_rtp(receiver: RTCPeerConnection, ssrc: int) -> Callable[[], int]:
    """The receiving end of ``receiver``'s link loses the next RTP packet of ``ssrc`` (in the clear
    in an SRTP header) as it arrives, whichever way the bridge sent it. Returns the lost packet's
    sequence number once it is lost (-1 before)."""
    transport = receiver.getTransceivers()[0].receiver.transport.transport
    pair = getattr(getattr(transport, aiortc_compat.ICE_CONNECTION_ATTR), aiortc_compat.ICE_NOMINATED_ATTR)[1]
    protocol = pair.protocol
    original = protocol.datagram_received
    lost: list[int] = []

    def lossy(data: bytes, addr: Any) -> None:
        if not lost and len(data) >= 12 and data[0] >> 6 == 2 and 96 <= data[1] & 0x7F <= 127 \
                and struct.unpack_from("!L", data, 8)[0] == ssrc:
            lost.append(struct.unpack_from("!H", data, 2)[0])
            return
        original(data, addr)

    protocol.datagram_received = lossy
    return lambda: lost[0] if lost else -1
