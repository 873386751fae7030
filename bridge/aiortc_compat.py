"""Every touch of aiortc's private API, in one place (aiortc 1.16).

A pass-through relay needs four things aiortc does not expose publicly:

1. **Encoded frames out of a receiver.** The receiver's decoder thread looks its decoder up
   through the module name ``aiortc.rtcrtpreceiver.get_decoder``. For codecs marked
   pass-through we hand back :class:`PacketDecoder`, which returns the reassembled frame as an
   ``av.Packet`` (pts = RTP timestamp, time base 1/90000 video, 1/48000 Opus): the remote track
   then yields encoded packets and nothing is decoded.
2. **Encoded frames into a sender without an encoder.** ``RTCRtpSender`` re-packetizes an
   ``av.Packet`` through ``Encoder.pack()``, but looks the encoder up through
   ``aiortc.rtcrtpsender.get_encoder``, and ``OpusEncoder()`` opens a libopus encoder in its
   constructor. For marked codecs we hand back a packer that never opens a codec.
3. **Keyframe requests from a subscriber.** A PLI/FIR reaching a sender only sets a flag that the
   pack path ignores (``RTCRtpSender._send_keyframe``); we wrap it per sender.
4. **Keyframe requests to a publisher.** ``RTCRtpReceiver._send_rtcp_pli(ssrc)``.
   **Audio levels from a publisher** (RFC 6464): aiortc parses the header extension into
   ``packet.extensions.audio_level`` and drops it; we wrap ``RTCRtpReceiver._handle_rtp_packet``
   per receiver to read it first.
5. **A cheaper clock.** The sender stamps every RTP packet with ``aiortc.clock.current_ntp_time()``,
   which goes through ``datetime`` objects (~8 % of a relay's CPU with many subscribers); the same
   value is computed from ``time.time()``.
6. **A send path without a task per subscriber.** aiortc's ``RTCRtpSender._run_rtp`` wakes one
   task per subscriber per frame, packetizes the frame again for each subscriber, builds an
   ``RtpPacket`` per packet and awaits four coroutines down to ``sendto``. For a track that can
   push (:class:`DirectTrack`, the relay's subscriber tracks) we replace the sender's ``_run_rtp``
   and ``_retransmit`` on that one sender: the fan-out call itself sends (:class:`DirectSender`):
   the frame is packetized once for all subscribers of a timeline (:class:`FramePacker`), and per
   subscriber there is only a 12-byte header, SRTP and one ``sendto``. It reads the sender's
   name-mangled state (``_RTCRtpSender__*``: extension map, mid, RTX payload type, the counters
   its RTCP sender reports), the DTLS transport's SRTP session and the ICE pair nominated for
   component 1. Only a plain UDP pair is sent to directly; any other (TURN) goes through aiortc's
   own ``RTCDtlsTransport._send_rtp``.

Which codecs are pass-through is decided per peer connection: after ``setRemoteDescription``
each transceiver holds its own negotiated copies of the codec parameters
(``RTCRtpTransceiver._codecs``), and :func:`mark_passthrough` tags those copies. Other peer
connections of the same process (a test's own players, say) keep decoding normally.

``tests/test_aiortc_compat.py`` checks each of these names, so an aiortc upgrade that moves one
fails loudly instead of silently transcoding.
"""

from __future__ import annotations

import asyncio
import fractions
import random
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, cast

import av
from aioice import ice as _aioice_mod
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc import clock as _clock_mod
from aiortc import codecs as _codecs_mod
from aiortc import rtcdtlstransport as _dtls_mod
from aiortc import rtcpeerconnection as _pc_mod
from aiortc import rtcrtpreceiver as _receiver_mod
from aiortc import rtcrtpsender as _sender_mod
from aiortc import rtp as _rtp_mod
from aiortc.codecs.base import Encoder
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.mediastreams import convert_timebase
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

MARK = "_hoinghi_passthrough"
VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
AUDIO_TIME_BASE = fractions.Fraction(1, 48000)
PASSTHROUGH_MIME_TYPES = ("video/vp8", "video/h264", "audio/opus")

# The names below are aiortc internals; the test module checks every one of them.
RECEIVER_DECODER_LOOKUP = (_receiver_mod, "get_decoder")
SENDER_ENCODER_LOOKUP = (_sender_mod, "get_encoder")
SENDER_KEYFRAME_METHOD = "_send_keyframe"
RECEIVER_PLI_METHOD = "_send_rtcp_pli"
RECEIVER_RTP_METHOD = "_handle_rtp_packet"  # coroutine method (packet, arrival_time_ms), per instance
TRANSCEIVER_CODECS_ATTR = "_codecs"
VP8_PACKETIZE = "_packetize"  # classmethod (buffer, picture_id) -> payloads
H264_SPLIT = "_split_bitstream"  # staticmethod (annex-b bytes) -> NAL units
H264_PACKETIZE = "_packetize"  # classmethod (NAL units) -> payloads
NTP_CLOCK = (_clock_mod, "current_ntp_time")
COMMON_CODECS_FUNCTION = (_pc_mod, "find_common_codecs")
LOCAL_CODECS_TABLE = (_codecs_mod, "CODECS")
# The direct send path (6.)
SENDER_RUN_RTP = "_run_rtp"  # coroutine method (codec) started by RTCRtpSender.send()
SENDER_RETRANSMIT = "_retransmit"  # coroutine method (sequence_number) called on a NACK
SENDER_PRIVATE = "_RTCRtpSender__"  # name-mangling prefix of RTCRtpSender's own attributes
SENDER_STATE = ("rtp_started", "rtp_exited", "rtp_header_extensions_map", "mid", "rtx_payload_type",
                "ntp_timestamp", "rtp_timestamp", "octet_count", "packet_count")
SENDER_HISTORY_SIZE = (_sender_mod, "RTP_HISTORY_SIZE")
DTLS_STATE_ATTR = "_state"
DTLS_CONNECTED = (_dtls_mod, "State")  # State.CONNECTED
DTLS_SRTP_ATTR = "_tx_srtp"
DTLS_SEND_RTP = "_send_rtp"
ICE_CONNECTION_ATTR = "_connection"  # RTCIceTransport -> aioice.Connection
ICE_NOMINATED_ATTR = "_nominated"  # aioice.Connection: {component: CandidatePair}
ICE_UDP_PROTOCOL = (_aioice_mod, "StunProtocol")

_original_get_decoder: Callable[[RTCRtpCodecParameters], Any] | None = None
_original_get_encoder: Callable[[RTCRtpCodecParameters], Any] | None = None
NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01


def fast_ntp_time() -> int:
    """The current time as a 64-bit NTP timestamp (what ``aiortc.clock.current_ntp_time`` returns)."""
    now = time.time() + NTP_UNIX_OFFSET
    seconds = int(now)
    return (seconds << 32) | int((now - seconds) * (1 << 32))


class PacketDecoder:
    """Stands in for a decoder: returns the reassembled encoded frame as one ``av.Packet``."""

    def __init__(self, time_base: fractions.Fraction) -> None:
        self.time_base = time_base

    def decode(self, encoded_frame: Any) -> list[av.Packet]:
        packet = av.Packet(encoded_frame.data)
        packet.pts = encoded_frame.timestamp
        packet.time_base = self.time_base
        return [packet]


class Vp8Packer(Encoder):
    """Packetizes an encoded VP8 frame (aiortc's own packetizer; no libvpx encoder is opened)."""

    def __init__(self) -> None:
        self.picture_id = random.randint(0, (1 << 15) - 1)

    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        raise RuntimeError("Vp8Packer cannot encode: it only forwards encoded frames")

    def pack(self, packet: av.Packet) -> tuple[list[bytes], int]:
        assert packet.pts is not None and packet.time_base is not None
        payloads = getattr(Vp8Encoder, VP8_PACKETIZE)(bytes(packet), self.picture_id)
        self.picture_id = (self.picture_id + 1) % (1 << 15)
        return payloads, convert_timebase(packet.pts, packet.time_base, VIDEO_TIME_BASE)


class H264Packer(Encoder):
    """Packetizes an encoded H.264 access unit (aiortc's own packetizer; no x264 is opened)."""

    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        raise RuntimeError("H264Packer cannot encode: it only forwards encoded frames")

    def pack(self, packet: av.Packet) -> tuple[list[bytes], int]:
        assert packet.pts is not None and packet.time_base is not None
        nal_units = getattr(H264Encoder, H264_SPLIT)(bytes(packet))
        payloads = getattr(H264Encoder, H264_PACKETIZE)(nal_units)
        return payloads, convert_timebase(packet.pts, packet.time_base, VIDEO_TIME_BASE)


class OpusPacker(Encoder):
    """Packs an encoded Opus packet as one RTP payload (no libopus encoder is opened)."""

    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        raise RuntimeError("OpusPacker cannot encode: it only forwards encoded packets")

    def pack(self, packet: av.Packet) -> tuple[list[bytes], int]:
        assert packet.pts is not None and packet.time_base is not None
        return [bytes(packet)], convert_timebase(packet.pts, packet.time_base, AUDIO_TIME_BASE)


def _is_marked(codec: RTCRtpCodecParameters) -> bool:
    return bool(getattr(codec, MARK, False))


def _get_decoder(codec: RTCRtpCodecParameters) -> Any:
    if _is_marked(codec):
        return PacketDecoder(AUDIO_TIME_BASE if codec.mimeType.lower().startswith("audio/") else VIDEO_TIME_BASE)
    assert _original_get_decoder is not None
    return _original_get_decoder(codec)


def _get_encoder(codec: RTCRtpCodecParameters) -> Any:
    if _is_marked(codec):
        return _get_packer(codec.mimeType.lower())
    assert _original_get_encoder is not None
    return _original_get_encoder(codec)


def install() -> None:
    """Route aiortc's codec lookups through the pass-through hooks (idempotent, process-wide).

    Unmarked codecs still get aiortc's own decoders and encoders."""
    global _original_get_decoder, _original_get_encoder
    module, name = RECEIVER_DECODER_LOOKUP
    if getattr(module, name) is not _get_decoder:
        _original_get_decoder = getattr(module, name)
        setattr(module, name, _get_decoder)
    module, name = SENDER_ENCODER_LOOKUP
    if getattr(module, name) is not _get_encoder:
        _original_get_encoder = getattr(module, name)
        setattr(module, name, _get_encoder)
    setattr(*NTP_CLOCK, fast_ntp_time)


def installed() -> bool:
    return (getattr(*RECEIVER_DECODER_LOOKUP) is _get_decoder
            and getattr(*SENDER_ENCODER_LOOKUP) is _get_encoder)


def mark_passthrough(pc: RTCPeerConnection, kinds: tuple[str, ...] = ("audio", "video")) -> None:
    """Make every transceiver of ``pc`` forward encoded frames instead of decoding/encoding.

    Call it right after ``setRemoteDescription`` (the negotiated codec copies exist from then on,
    and no media flows before the answer is applied)."""
    install()
    for transceiver in pc.getTransceivers():
        if transceiver.kind not in kinds:
            continue
        for codec in getattr(transceiver, TRANSCEIVER_CODECS_ATTR):
            setattr(codec, MARK, True)
        if _is_direct_track(transceiver.sender.track):
            use_direct_send(transceiver.sender)


def negotiated_codecs(transceiver: Any) -> list[RTCRtpCodecParameters]:
    """The codecs a transceiver negotiated (first = the one it sends), RTX excluded."""
    return [c for c in getattr(transceiver, TRANSCEIVER_CODECS_ATTR) if c.name.lower() != "rtx"]


def common_codecs(kind: str, offered: list[RTCRtpCodecParameters]) -> list[RTCRtpCodecParameters]:
    """The offered codecs aiortc can take, in the offer's order (RTX excluded), as
    ``setRemoteDescription`` will negotiate them."""
    find_common = getattr(*COMMON_CODECS_FUNCTION)
    local = getattr(*LOCAL_CODECS_TABLE)[kind]
    return [c for c in find_common(local, offered) if c.name.lower() != "rtx"]


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call ``callback`` whenever the remote end of ``sender`` sends a PLI or FIR."""
    original = getattr(sender, SENDER_KEYFRAME_METHOD)

    def hooked() -> None:
        original()
        callback()

    setattr(sender, SENDER_KEYFRAME_METHOD, hooked)


def on_audio_level(receiver: RTCRtpReceiver, callback: Callable[[int], None]) -> None:
    """Call ``callback(level)`` (-dBov, 0 loudest … 127 silence) for each RTP packet ``receiver``
    gets that carries the RFC 6464 audio-level header extension."""
    original = getattr(receiver, RECEIVER_RTP_METHOD)

    async def hooked(packet: Any, arrival_time_ms: int) -> None:
        level = packet.extensions.audio_level
        if level is not None:
            callback(int(level[1]))
        await original(packet, arrival_time_ms=arrival_time_ms)

    setattr(receiver, RECEIVER_RTP_METHOD, hooked)


async def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Ask the publisher behind ``receiver`` for a keyframe of stream ``media_ssrc``."""
    await getattr(receiver, RECEIVER_PLI_METHOD)(media_ssrc)


# --- 6. The direct send path -------------------------------------------------------------------

MAX_SEND_BACKLOG = 256 * 1024  # bytes queued in the UDP transport: beyond this a subscriber resyncs
_HEADER = struct.Struct("!BBHLL")
_EXTENSION_HEADER = struct.Struct("!HH")


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
        self._packers: dict[str, Vp8Packer | H264Packer | OpusPacker] = {}
        self._last: tuple[av.Packet, str] | None = None
        self._result: tuple[list[bytes], int] = ([], 0)
        self.frames = 0

    def pack(self, packet: av.Packet, mime: str) -> tuple[list[bytes], int]:
        last = self._last
        if last is not None and last[0] is packet and last[1] == mime:
            return self._result
        packer = self._packers.get(mime)
        if packer is None:
            packer = self._packers[mime] = _get_packer(mime)
        self._result = packer.pack(packet)
        self._last = (packet, mime)  # holds the packet: its identity cannot be reused meanwhile
        self.frames += 1
        return self._result


def _get_packer(mime: str) -> Vp8Packer | H264Packer | OpusPacker:
    if mime == "audio/opus":
        return OpusPacker()
    if mime == "video/h264":
        return H264Packer()
    if mime == "video/vp8":
        return Vp8Packer()
    raise ValueError(f"no pass-through packer for {mime}")


def _sender_state(sender: RTCRtpSender, name: str) -> Any:
    return getattr(sender, SENDER_PRIVATE + name)


class DirectSender:
    """One subscriber's RTP stream, sent synchronously from the fan-out (see module docs, 6.).

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
        self.ssrc = sender._ssrc
        self.sequence_number = _sender_mod.random_sequence_number()
        self.timestamp_origin = random.getrandbits(32)
        self.extensions_map = _sender_state(sender, "rtp_header_extensions_map")
        self.mid = _sender_state(sender, "mid")
        self.rtx_sequence_number = _sender_mod.random_sequence_number()
        self.history_size: int = getattr(*SENDER_HISTORY_SIZE)
        self.history: dict[int, tuple[bytes, bytes]] = {}
        self.packets = 0
        self.octets = 0
        self.backlogged = 0
        self._connected = getattr(*DTLS_CONNECTED).CONNECTED
        self.retransmits = 0
        self._pair: Any = None
        self._udp: Any = None
        self._slow_queue: deque[bytes] = deque()
        self._slow_task: asyncio.Task[None] | None = None

    def _route(self) -> bool:
        """Re-read the nominated pair; True when it is a plain UDP pair we can send to directly."""
        connection = getattr(self.dtls.transport, ICE_CONNECTION_ATTR)
        pair = getattr(connection, ICE_NOMINATED_ATTR).get(1)
        if pair is not self._pair:
            self._pair = pair
            self._udp = None
            if pair is not None and type(pair.protocol) is getattr(*ICE_UDP_PROTOCOL):
                self._udp = pair.protocol.transport
        return self._udp is not None

    def send(self, packet: av.Packet) -> bool:
        """Send one encoded frame. False: this subscriber's transport is backlogged (the frame
        was not sent; the caller resyncs it at the next keyframe)."""
        dtls = self.dtls
        if getattr(dtls, DTLS_STATE_ATTR) is not self._connected:
            return True  # not connected (yet or any more): nothing to send to, as aiortc drops it
        payloads, timestamp = self.packer.pack(packet, self.mime)
        if not payloads:
            return True
        direct = self._route()
        if direct and self._udp.get_write_buffer_size() > MAX_SEND_BACKLOG:
            self.backlogged += 1
            return False
        ntp = fast_ntp_time()
        extensions = _rtp_mod.HeaderExtensions()
        extensions.abs_send_time = (ntp >> 14) & 0x00FFFFFF
        extensions.mid = self.mid
        profile, value = self.extensions_map.set(extensions)
        first_byte = 0x90 if value else 0x80
        extension = _EXTENSION_HEADER.pack(profile, len(value) >> 2) + value if value else b""
        timestamp = (self.timestamp_origin + timestamp) & 0xFFFFFFFF
        seq = self.sequence_number
        last = len(payloads) - 1
        history, size, pt, ssrc = self.history, self.history_size, self.payload_type, self.ssrc
        octets = 0
        plain_packets = []
        for i, payload in enumerate(payloads):
            header = _HEADER.pack(first_byte, pt | 0x80 if i == last else pt, seq, timestamp, ssrc) + extension
            history[seq % size] = (header, payload)
            plain_packets.append(header + payload)
            octets += len(payload)
            seq = (seq + 1) & 0xFFFF
        self.sequence_number = seq
        if direct:
            protect, sendto, addr = getattr(dtls, DTLS_SRTP_ATTR).protect, self._udp.sendto, self._pair.remote_addr
            for plain in plain_packets:
                sendto(protect(plain), addr)
        else:  # a TURN pair: aiortc's own (asynchronous) path, in order, by one task
            self._slow_queue.extend(plain_packets)
            if self._slow_task is None or self._slow_task.done():
                self._slow_task = asyncio.get_running_loop().create_task(self._send_slow())
        self.packets += len(payloads)
        self.octets += octets
        sender = self.sender
        setattr(sender, SENDER_PRIVATE + "ntp_timestamp", ntp)
        setattr(sender, SENDER_PRIVATE + "rtp_timestamp", timestamp)
        setattr(sender, SENDER_PRIVATE + "octet_count", self.octets)
        setattr(sender, SENDER_PRIVATE + "packet_count", self.packets)
        return True

    async def _send_slow(self) -> None:
        queue = self._slow_queue
        try:
            while queue:
                await getattr(self.dtls, DTLS_SEND_RTP)(queue.popleft())
        except ConnectionError:
            queue.clear()

    async def retransmit(self, sequence_number: int) -> None:
        """A NACKed packet again, wrapped in RTX when RTX was negotiated (as aiortc does)."""
        entry = self.history.get(sequence_number % self.history_size)
        if entry is None or _HEADER.unpack_from(entry[0])[2] != sequence_number:
            return
        plain = entry[0] + entry[1]
        rtx_payload_type = _sender_state(self.sender, "rtx_payload_type")
        if rtx_payload_type is not None:
            original = _rtp_mod.RtpPacket.parse(plain, self.extensions_map)
            rtx = _rtp_mod.wrap_rtx(original, payload_type=rtx_payload_type,
                                    sequence_number=self.rtx_sequence_number, ssrc=self.sender._rtx_ssrc)
            self.rtx_sequence_number = (self.rtx_sequence_number + 1) & 0xFFFF
            plain = rtx.serialize(self.extensions_map)
        self.retransmits += 1
        try:
            await getattr(self.dtls, DTLS_SEND_RTP)(plain)
        except ConnectionError:
            pass


DIRECT_ATTR = "_hoinghi_direct"


def direct_sender(sender: RTCRtpSender) -> DirectSender | None:
    """The :class:`DirectSender` that sends for ``sender`` (None before it starts, or if it does not)."""
    return getattr(sender, DIRECT_ATTR, None)


def _is_direct_track(track: Any) -> bool:
    return track is not None and hasattr(track, "attach_direct")


def use_direct_send(sender: RTCRtpSender) -> None:
    """Have ``sender`` send its (direct) track through :class:`DirectSender` once it starts."""

    async def run_rtp(codec: RTCRtpCodecParameters) -> None:
        if not _is_direct_track(sender.track):
            await RTCRtpSender._run_rtp(sender, codec)  # replaced track: aiortc's own loop
            return
        track = cast(DirectTrack, sender.track)
        _sender_state(sender, "rtp_started").set()
        direct = DirectSender(sender, codec, track.packer)
        setattr(sender, SENDER_RETRANSMIT, direct.retransmit)
        setattr(sender, DIRECT_ATTR, direct)
        try:
            track.attach_direct(direct.send)
            await track.wait_stopped()
        except asyncio.CancelledError:
            pass
        finally:
            track.detach_direct()
            track.stop()
            _sender_state(sender, "rtp_exited").set()

    setattr(sender, SENDER_RUN_RTP, run_rtp)
