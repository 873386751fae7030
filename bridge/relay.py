"""The pass-through relay: encoded packets from one published track to many subscribers.

Nothing here decodes or encodes. A :class:`Source` reads ``av.Packet``s from a remote track
(see :mod:`bridge.aiortc_compat`) and hands each to its listeners; a :class:`Fanout` copies the
reference to each subscriber (:class:`RelayTrack`, the track an ``RTCRtpSender`` sends). A
subscriber takes packets once its sender starts, beginning at a keyframe it asks the publisher for
then (a late joiner does not wait for the publisher's next natural keyframe).

A bridge's subscriber tracks are sent directly: the fan-out call packetizes each frame once for
the whole timeline and sends it to every subscriber then and there
(:class:`bridge.direct_send.DirectSender`); a subscriber whose UDP transport is backlogged is
skipped and resynced at the next keyframe instead of buffering without bound. A timeline's
subscribers in steady state are sent to by one C loop per frame instead
(:mod:`bridge.native_fanout`). Read through ``recv()`` (aiortc's own sender loop), a track keeps a
bounded queue with the same rule as a backlogged transport.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from bridge import native_send
from bridge.keyframes import KeyframeRequester, is_keyframe
from bridge.native_fanout import NativeFanout, NativeMember
from bridge.rtp_frames import FramePacker
from bridge.speaking import SPEAKING_LEVEL

if TYPE_CHECKING:
    from bridge.direct_send import DirectSender

log = logging.getLogger("hoinghi.bridge.relay")

VIDEO_QUEUE_FRAMES = 30  # one second at 30 fps: beyond that a subscriber resyncs
AUDIO_QUEUE_FRAMES = 50
NO_LEVEL_AFTER = 25  # packets (half a second of sound) with no level extension: a source that sends none

Listener = Callable[["Source", av.Packet, bool], None]


class RelayTrack(MediaStreamTrack):
    """One subscriber's outgoing track: yields the encoded packets pushed into it."""

    def __init__(self, kind: str, on_resync: Callable[[], None], max_queue: int,
                 on_stop: Callable[[RelayTrack], None] | None = None, packer: FramePacker | None = None) -> None:
        super().__init__()
        self.kind = kind
        # The codec this subscriber negotiated (lower-case mime type), set once its offer is
        # answered: a packet of another codec is never sent under its label.
        self.codec: str | None = None
        self.packets_wrong_codec = 0
        # True while this subscriber must not get the timeline (its own voice: no echo)
        self.withheld: Callable[[], bool] | None = None
        self.packer = packer if packer is not None else FramePacker()
        self.home: Fanout | None = None  # the fan-out this track sits in (its C loop sends in steady state)
        self._direct: Callable[[av.Packet], bool] | None = None
        self._direct_sender: DirectSender | None = None
        self.native_sender: NativeMember | None = None  # set while the home fan-out's C loop sends for it
        self._stopped = asyncio.Event()
        self._gated = kind == "video"
        self._waiting_keyframe = self._gated
        self._queue: deque[av.Packet] = deque()
        self._max_queue = max_queue
        self._wakeup = asyncio.Event()
        self._on_resync = on_resync
        self._on_stop = on_stop
        self._started = False
        self._live = True  # readyState == "live", read for every packet without the property
        self._packets_in = 0
        self.packets_dropped = 0
        self.resyncs = 0

    @property
    def waiting_keyframe(self) -> bool:
        return self._waiting_keyframe

    @property
    def packets_in(self) -> int:
        """Packets (encoded frames) handed to the sender, the C loop's included."""
        native = self.native_sender
        return self._packets_in + (int(native.native.frames) if native is not None else 0)

    def packets_in_native(self, frames: int) -> None:
        """The C loop let this track go having sent it ``frames`` frames."""
        self._packets_in += frames

    def leave_native(self) -> None:
        """Back to the Python path (before anything about what this track is sent changes)."""
        native = self.native_sender
        if native is not None:
            native.leave_native()

    def native_home(self) -> NativeFanout | None:
        """The C loop this track may be sent by now (None: the Python path only)."""
        home, withheld = self.home, self.withheld
        # (a listener's own voice is never sent; a floor change hands the floor timeline's members
        # back, bridge.programme.Programme.set_floor, and they are taken again if still not withheld)
        return home.native if home is not None and (withheld is None or not withheld()) else None

    def start(self) -> None:
        """The sender started reading (its transport is up): from now on take packets, starting
        at a keyframe asked for now. Before that, packets would only pile up as a stale backlog."""
        if not self._started:
            self._started = True
            if self._gated:
                self._on_resync()

    def attach_direct(self, send: Callable[[av.Packet], bool], sender: DirectSender | None = None) -> None:
        """Send each packet through ``send`` as it is pushed (see
        :class:`bridge.direct_send.DirectSender`); ``send`` returns False when it fell behind.
        ``sender``: whose ``send`` it is (the fan-out's C loop may then send for it)."""
        self._direct = send
        self._direct_sender = sender
        self._queue.clear()
        self.start()

    def detach_direct(self) -> None:
        self.leave_native()
        self._direct = None
        self._direct_sender = None

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    def push(self, packet: av.Packet, keyframe: bool, codec: str | None = None) -> None:
        """Take one packet of the timeline, encoded with ``codec`` (lower-case mime type)."""
        if self.native_sender is not None:  # pushed to directly while in the C loop: this path takes over
            self.leave_native()
        if not self._live or not self._started:
            return
        if codec != self.codec and codec is not None and self.codec is not None:
            self.packets_wrong_codec += 1
            return
        if self.withheld is not None and self.withheld():
            self.packets_dropped += 1
            return
        if self._waiting_keyframe:
            if not keyframe:
                self.packets_dropped += 1
                # Ask again while waiting (throttled at the publisher): the request made at start may
                # be lost (a publisher ignores one that comes too soon after another), and the
                # browser, getting nothing, never asks itself.
                self._on_resync()
                return
            self._waiting_keyframe = False
        direct = self._direct
        if direct is not None:
            try:
                sent = direct(packet)
            except Exception:  # this subscriber's transport broke: end it, not the fan-out
                log.exception("subscriber %s: send failed, its track stops", self.id)
                self.stop()
                return
            if not sent:
                self._fell_behind(1)
                return
            self._packets_in += 1
            sender = self._direct_sender
            if sender is not None and self._live:
                native = self.native_home()
                if native is not None:
                    try:
                        native.enroll(self, sender, self.codec)
                    except Exception:  # the C loop is an optimisation: this track stays on the Python path
                        log.exception("subscriber %s: could not join the C loop", self.id)
                        native.abandon()
                        self._direct_sender = None
            return
        if len(self._queue) >= self._max_queue:
            self._fell_behind(len(self._queue) + 1)
            return
        self._queue.append(packet)
        self._packets_in += 1
        self._wakeup.set()

    def _fell_behind(self, dropped: int) -> None:
        """Drop what is queued and start again at the next keyframe."""
        self.leave_native()
        self.packets_dropped += dropped
        self._queue.clear()
        self.resyncs += 1
        if self._gated:
            self._waiting_keyframe = True
            self._on_resync()

    def request_keyframe(self) -> None:
        """This subscriber lost the picture (PLI/FIR): ask the publisher for a keyframe."""
        self._on_resync()

    def resync(self) -> None:
        """Start again at the next keyframe (e.g. after a floor switch)."""
        self.leave_native()
        if self._gated:
            self._queue.clear()
            self._waiting_keyframe = True

    async def recv(self) -> av.Packet:
        self.start()
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._queue.popleft()

    def stop(self) -> None:
        self.leave_native()
        super().stop()
        self._live = False
        self._wakeup.set()  # let a pending recv() see the end
        self._stopped.set()
        self._direct = None
        if self._on_stop is not None:
            self._on_stop(self)
            self._on_stop = None


class Fanout:
    """The subscribers of one timeline (a source's track, or a programme output)."""

    def __init__(self, kind: str, request_keyframe: Callable[[], None]) -> None:
        self.kind = kind
        self._request_keyframe = request_keyframe
        self.tracks: set[RelayTrack] = set()
        self.packer = FramePacker()  # each frame packetized once for all its subscribers
        # the subscribers in steady state, sent to by one C call per frame (bridge.native_fanout)
        self.native = NativeFanout(self.packer) if native_send.ENABLED else None

    def request_keyframe(self) -> None:
        """Ask whoever feeds this timeline for a keyframe (a subscriber is about to join it)."""
        self._request_keyframe()

    def subscribe(self, max_queue: int | None = None) -> RelayTrack:
        if max_queue is None:
            max_queue = VIDEO_QUEUE_FRAMES if self.kind == "video" else AUDIO_QUEUE_FRAMES
        track = RelayTrack(self.kind, self._request_keyframe, max_queue, on_stop=self.tracks.discard,
                           packer=self.packer)
        track.home = self
        self.tracks.add(track)
        return track

    def push(self, packet: av.Packet, keyframe: bool, codec: str | None = None) -> None:
        native = self.native
        if native is not None and native.members:
            try:
                native.send(packet, codec)  # first: a track enrolled below is sent from there from the next frame
            except Exception:  # (a bug): the timeline goes on without its C loop
                log.exception("the C loop of a %s timeline failed: its subscribers are sent from Python", self.kind)
                native.abandon()
                self.native = None
        for track in tuple(self.tracks):  # a track that breaks leaves the set meanwhile
            if track.native_sender is None:
                track.push(packet, keyframe, codec)

    def resync_all(self) -> None:
        for track in self.tracks:
            track.resync()

    def close(self) -> None:
        for track in list(self.tracks):
            track.stop()


class Source:
    """One published track (a site's camera or microphone), read once, forwarded to listeners."""

    def __init__(self, kind: str, mime_type: str, keyframes: KeyframeRequester | None = None,
                 label: str = "") -> None:
        self.kind = kind
        self.mime_type = mime_type
        self.codec = mime_type.lower()  # what a subscriber must have negotiated to get these packets
        self.label = label
        self._keyframes = keyframes
        self.listeners: list[Listener] = []
        self.fanout = Fanout(kind, self.request_keyframe)
        self.ended = asyncio.Event()
        # A muted microphone: its packets still arrive (a client may ignore the mute) and are
        # dropped here, before the programme and the cascade see them.
        self.muted = False
        self.dropped_muted = 0
        self.flowing = asyncio.Event()  # set at the first packet (a publication replacing another waits for it)
        # A microphone: set at its first packet of voice (RFC 6464 level), or once its packets say
        # no level at all; a replacement's sound takes over from the old one only then (programme.Switch)
        self.sounding = asyncio.Event()
        self._levels = kind != "audio"  # (a camera's is never waited for: nothing to count)
        self.frames = 0
        self.keyframes_seen = 0
        self._task: asyncio.Task[None] | None = None

    def request_keyframe(self) -> None:
        if self.kind == "video" and self._keyframes is not None:
            self._keyframes.request()

    @property
    def keyframe_requests_sent(self) -> int:
        return self._keyframes.sent if self._keyframes is not None else 0

    def heard_level(self, level: int) -> None:
        """One packet's audio level (-dBov, 127 silence) as its RTP header extension says."""
        self._levels = True
        if level <= SPEAKING_LEVEL and not self.sounding.is_set():
            self.sounding.set()

    def feed(self, packet: av.Packet) -> None:
        if not self.flowing.is_set():
            self.flowing.set()
        if not self._levels and self.frames >= NO_LEVEL_AFTER:
            self._levels = True  # it sends none: counted as sounding, and not counted again
            self.sounding.set()
        if self.muted:
            self.dropped_muted += 1
            return
        keyframe = is_keyframe(self.mime_type, bytes(packet)) if self.kind == "video" else True
        self.frames += 1
        if keyframe and self.kind == "video":
            self.keyframes_seen += 1
        self.fanout.push(packet, keyframe, self.codec)
        for listener in list(self.listeners):
            listener(self, packet, keyframe)

    def start(self, track: MediaStreamTrack) -> None:
        self._task = asyncio.get_running_loop().create_task(self._pump(track))

    async def _pump(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                packet = await track.recv()
                if not isinstance(packet, av.Packet):
                    log.error("source %s yields decoded frames: pass-through hook not applied", self.label)
                    return
                self.feed(packet)
        except MediaStreamError:
            pass
        finally:
            self.ended.set()

    async def close(self) -> None:
        if self._keyframes is not None:
            await self._keyframes.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.fanout.close()
        self.ended.set()
