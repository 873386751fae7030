"""The direct send path: a relay subscriber's RTP stream sent from the fan-out call itself.

aiortc's ``RTCRtpSender._run_rtp`` wakes one task per subscriber per frame, packetizes the frame
again for each subscriber, builds an ``RtpPacket`` per packet and awaits four coroutines down to
``sendto``. For a track that can push (:class:`DirectTrack`, the relay's subscriber tracks),
:func:`use_direct_send` replaces the sender's ``_run_rtp`` and ``_retransmit`` on that one sender:
the frame is packetized once for all subscribers of a timeline (:class:`FramePacker`), and per
subscriber there is only a 12-byte header (its extension block serialized once per sender, only
the send time patched in), SRTP, and a ``sendto`` straight on the socket (:mod:`bridge.udp_batch`,
which can also send a frame in one call with UDP segmentation) (:class:`DirectSender`).

Every aiortc / aioice internal this reads or replaces is named in :mod:`bridge.aiortc_compat`
(and checked by ``tests/test_aiortc_compat.py``); nothing here spells a private name itself.
"""

from __future__ import annotations

import asyncio
import random
import struct
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, cast

import av
from aiortc import RTCRtpSender
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from bridge import aiortc_compat as compat
from bridge.udp_batch import DatagramBatch

MAX_SEND_BACKLOG = 256 * 1024  # bytes queued in the UDP transport: beyond this a subscriber resyncs
DIRECT_ATTR = "_hoinghi_direct"

_HEADER = struct.Struct("!BBHLL")
_EXTENSION_HEADER = struct.Struct("!HH")
_HeaderExtensions: Any = getattr(*compat.RTP_HEADER_EXTENSIONS)
_RtpPacket: Any = getattr(*compat.RTP_PACKET)
_wrap_rtx: Any = getattr(*compat.RTX_WRAP)
_random_sequence_number: Callable[[], int] = getattr(*compat.SEQUENCE_NUMBER_ORIGIN)
# The sender's own counters, read by its RTCP sender reports and getStats()
_NTP_TIMESTAMP = compat.SENDER_PRIVATE + "ntp_timestamp"
_RTP_TIMESTAMP = compat.SENDER_PRIVATE + "rtp_timestamp"
_OCTET_COUNT = compat.SENDER_PRIVATE + "octet_count"
_PACKET_COUNT = compat.SENDER_PRIVATE + "packet_count"


class DirectTrack(Protocol):
    """A track that pushes its packets into a callback instead of being read by ``recv()``."""

    packer: FramePacker

    def attach_direct(self, send: Callable[[av.Packet], bool]) -> None:
        """From now on call ``send(packet)`` for each packet; ``False`` means it fell behind."""

    def detach_direct(self) -> None: ...

    async def wait_stopped(self) -> None: ...

    def stop(self) -> None: ...


class FramePacker:
    """Packetizes each encoded frame once for every subscriber of one timeline.

    The subscribers of a timeline receive the same ``av.Packet`` objects one after another, so
    the payloads of the last packet are kept. A timeline carries one codec (subscribers are
    pinned to the source's codec); the VP8 picture id advances once per frame for everyone."""

    def __init__(self) -> None:
        self._packers: dict[str, compat.Vp8Packer | compat.H264Packer | compat.OpusPacker] = {}
        self._last: tuple[av.Packet, str] | None = None
        self._result: tuple[list[bytes], int] = ([], 0)
        self.frames = 0

    def pack(self, packet: av.Packet, mime: str) -> tuple[list[bytes], int]:
        last = self._last
        if last is not None and last[0] is packet and last[1] == mime:
            return self._result
        packer = self._packers.get(mime)
        if packer is None:
            packer = self._packers[mime] = compat.packer_for(mime)
        self._result = packer.pack(packet)
        self._last = (packet, mime)  # holds the packet: its identity cannot be reused meanwhile
        self.frames += 1
        return self._result


def _sender_state(sender: RTCRtpSender, name: str) -> Any:
    return getattr(sender, compat.SENDER_PRIVATE + name)


class DirectSender:
    """One subscriber's RTP stream, sent synchronously from the fan-out (see module docs).

    Sequence numbers, timestamp origin and SSRC are the sender's own as aiortc would make them;
    header extensions (mid, abs-send-time) are serialized once per frame; NACKed packets are
    retransmitted (over RTX when negotiated) from a history of plain packets whose payloads are
    shared by all subscribers; the counters the sender's RTCP reports and ``getStats()`` read are
    kept up to date once per frame."""

    def __init__(self, sender: RTCRtpSender, codec: RTCRtpCodecParameters, packer: FramePacker) -> None:
        self.sender = sender
        self.dtls = sender.transport
        self.packer = packer
        self.mime = codec.mimeType.lower()
        self.payload_type: int = codec.payloadType or 0
        self.ssrc: int = getattr(sender, compat.SENDER_SSRC)
        self.sequence_number = _random_sequence_number()
        self.timestamp_origin = random.getrandbits(32)
        self.extensions_map = _sender_state(sender, "rtp_header_extensions_map")
        self.mid = _sender_state(sender, "mid")
        self.rtx_sequence_number = _random_sequence_number()
        self.history_size: int = getattr(*compat.SENDER_HISTORY_SIZE)
        # The last packets sent, by sequence number modulo history_size: header and payload apart
        # (the payloads are the timeline's, shared by every subscriber); preallocated, so a frame
        # sent allocates no container but the list of its datagrams.
        self.history_headers: list[bytes] = [b""] * self.history_size
        self.history_payloads: list[bytes] = [b""] * self.history_size
        self.packets = 0
        self.octets = 0
        self.backlogged = 0
        self._connected = getattr(*compat.DTLS_CONNECTED).CONNECTED
        self.retransmits = 0
        self._pair: Any = None
        self._udp: Any = None
        self._addr: Any = None  # the pair's remote address (aioice builds it anew at each read)
        self._batch: DatagramBatch | None = None
        self._extension: tuple[bytes, bytes | None] | None = None
        self._slow_queue: deque[bytes] = deque()
        self._slow_task: asyncio.Task[None] | None = None

    def _route(self) -> bool:
        """Re-read the nominated pair; True when it is a plain UDP pair we can send to directly."""
        connection = getattr(self.dtls.transport, compat.ICE_CONNECTION_ATTR)
        pair = getattr(connection, compat.ICE_NOMINATED_ATTR).get(1)
        if pair is not self._pair:
            self._pair = pair
            self._udp = None
            if self._batch is not None:
                self._batch.close()
                self._batch = None
            if pair is not None and type(pair.protocol) is getattr(*compat.ICE_UDP_PROTOCOL):
                self._udp = pair.protocol.transport
                self._addr = pair.remote_addr
                self._batch = DatagramBatch(self._udp)
        return self._udp is not None

    @property
    def batch(self) -> DatagramBatch | None:
        """What writes this subscriber's datagrams to its UDP pair (None: not a plain UDP pair)."""
        return self._batch

    def _serialized_extension(self, abs_send_time: int) -> bytes:
        """The header extension block (mid, abs-send-time) as the sender's map serializes it. The
        layout is fixed per sender: serialized once, then only the 3 time bytes change."""
        template = self._extension
        if template is None:
            template = self._extension = self._extension_template()
        head, tail = template
        if tail is None:
            return head
        return head + abs_send_time.to_bytes(3, "big") + tail

    def _extension_template(self) -> tuple[bytes, bytes | None]:
        def block(abs_send_time: int) -> bytes:
            extensions = _HeaderExtensions()
            extensions.abs_send_time = abs_send_time
            extensions.mid = self.mid
            profile, value = self.extensions_map.set(extensions)
            return _EXTENSION_HEADER.pack(profile, len(value) >> 2) + value if value else b""

        zero, ones = block(0), block(0xFFFFFF)
        changed = [i for i in range(min(len(zero), len(ones))) if zero[i] != ones[i]]
        if not changed:
            return zero, None  # abs-send-time not negotiated: the block never changes
        at = changed[0]
        assert len(zero) == len(ones) and changed == [at, at + 1, at + 2], "abs-send-time is 3 bytes"
        return zero[:at], zero[at + 3:]

    def send(self, packet: av.Packet) -> bool:
        """Send one encoded frame. False: this subscriber's transport is backlogged (the frame
        was not sent; the caller resyncs it at the next keyframe)."""
        dtls = self.dtls
        if getattr(dtls, compat.DTLS_STATE_ATTR) is not self._connected:
            return True  # not connected (yet or any more): nothing to send to, as aiortc drops it
        payloads, timestamp = self.packer.pack(packet, self.mime)
        if not payloads:
            return True
        direct = self._route()
        if direct and self._udp.get_write_buffer_size() > MAX_SEND_BACKLOG:
            self.backlogged += 1
            return False
        ntp = compat.fast_ntp_time()
        extension = self._serialized_extension((ntp >> 14) & 0x00FFFFFF)
        first_byte = 0x90 if extension else 0x80
        timestamp = (self.timestamp_origin + timestamp) & 0xFFFFFFFF
        seq = self.sequence_number
        last = len(payloads) - 1
        headers, bodies, size = self.history_headers, self.history_payloads, self.history_size
        pack, pt, ssrc = _HEADER.pack, self.payload_type, self.ssrc
        protect = getattr(dtls, compat.DTLS_SRTP_ATTR).protect if direct else None
        octets = 0
        datagrams = []
        for i, payload in enumerate(payloads):
            header = pack(first_byte, pt | 0x80 if i == last else pt, seq, timestamp, ssrc) + extension
            slot = seq % size
            headers[slot] = header
            bodies[slot] = payload
            datagrams.append(protect(header + payload) if protect is not None else header + payload)
            octets += len(payload)
            seq = (seq + 1) & 0xFFFF
        self.sequence_number = seq
        if direct:
            assert self._batch is not None
            self._batch.send(datagrams, self._addr)
        else:  # a TURN pair: aiortc's own (asynchronous) path, plain packets in order, by one task
            self._slow_queue.extend(datagrams)
            if self._slow_task is None or self._slow_task.done():
                self._slow_task = asyncio.get_running_loop().create_task(self._send_slow())
        self.packets += len(payloads)
        self.octets += octets
        sender = self.sender
        setattr(sender, _NTP_TIMESTAMP, ntp)
        setattr(sender, _RTP_TIMESTAMP, timestamp)
        setattr(sender, _OCTET_COUNT, self.octets)
        setattr(sender, _PACKET_COUNT, self.packets)
        return True

    async def _send_slow(self) -> None:
        queue = self._slow_queue
        try:
            while queue:
                await getattr(self.dtls, compat.DTLS_SEND_RTP)(queue.popleft())
        except ConnectionError:
            queue.clear()

    async def close(self) -> None:
        """The sender stopped: packets still queued for aiortc's path are dropped, its task awaited."""
        self._slow_queue.clear()
        if self._batch is not None:
            self._batch.close()
        self._pair = self._udp = self._batch = None
        if self._slow_task is not None:
            self._slow_task.cancel()
            await asyncio.gather(self._slow_task, return_exceptions=True)

    async def retransmit(self, sequence_number: int) -> None:
        """A NACKed packet again, wrapped in RTX when RTX was negotiated (as aiortc does)."""
        slot = sequence_number % self.history_size
        header = self.history_headers[slot]
        if not header or _HEADER.unpack_from(header)[2] != sequence_number:
            return
        plain = header + self.history_payloads[slot]
        rtx_payload_type = _sender_state(self.sender, "rtx_payload_type")
        if rtx_payload_type is not None:
            original = _RtpPacket.parse(plain, self.extensions_map)
            rtx = _wrap_rtx(original, payload_type=rtx_payload_type, sequence_number=self.rtx_sequence_number,
                            ssrc=getattr(self.sender, compat.SENDER_RTX_SSRC))
            self.rtx_sequence_number = (self.rtx_sequence_number + 1) & 0xFFFF
            plain = rtx.serialize(self.extensions_map)
        self.retransmits += 1
        try:
            await getattr(self.dtls, compat.DTLS_SEND_RTP)(plain)
        except ConnectionError:
            pass


def direct_sender(sender: RTCRtpSender) -> DirectSender | None:
    """The :class:`DirectSender` that sends for ``sender`` (None before it starts, or if it does not)."""
    return getattr(sender, DIRECT_ATTR, None)


def _is_direct_track(track: Any) -> bool:
    return track is not None and hasattr(track, "attach_direct")


def use_direct_send(sender: RTCRtpSender) -> None:
    """Have ``sender`` send its :class:`DirectTrack` through :class:`DirectSender` once it starts
    (call it when the track is added; a track replaced by an ordinary one gets aiortc's own loop)."""
    aiortc_run_rtp = getattr(RTCRtpSender, compat.SENDER_RUN_RTP)

    async def run_rtp(codec: RTCRtpCodecParameters) -> None:
        if not _is_direct_track(sender.track):
            await aiortc_run_rtp(sender, codec)
            return
        track = cast(DirectTrack, sender.track)
        _sender_state(sender, "rtp_started").set()
        direct = DirectSender(sender, codec, track.packer)
        setattr(sender, compat.SENDER_RETRANSMIT, direct.retransmit)
        setattr(sender, DIRECT_ATTR, direct)
        try:
            track.attach_direct(direct.send)
            await track.wait_stopped()
        except asyncio.CancelledError:
            pass
        finally:
            track.detach_direct()
            track.stop()
            try:
                await direct.close()
            finally:
                _sender_state(sender, "rtp_exited").set()  # RTCRtpSender.stop() waits for it

    setattr(sender, compat.SENDER_RUN_RTP, run_rtp)
