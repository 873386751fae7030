"""Every touch of aiortc's private API, in one place (aiortc 1.16).

A pass-through relay needs nine things aiortc does not expose publicly:

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
   ``packet.extensions.audio_level`` and drops it; we wrap ``RTCRtpReceiver._handle_rtp_packet`` per receiver.
5. **A cheaper clock.** The sender stamps every RTP packet with ``aiortc.clock.current_ntp_time()``, which
   goes through ``datetime`` objects (~8 % of a relay's CPU with many subscribers): ``time.time()`` instead.
6. **A send path without a task per subscriber** (:mod:`bridge.direct_send`). aiortc's ``RTCRtpSender._run_rtp``
   wakes one task per subscriber per frame, packetizes the frame again for each subscriber and awaits four
   coroutines down to ``sendto``. For a relay track we replace the sender's ``_run_rtp`` and ``_retransmit``
   (and ``_run_rtcp``: :mod:`bridge.rtcp_reports`) on that one sender and send from the fan-out call itself.
   That path reads the sender's SSRCs and name-mangled state (``_RTCRtpSender__*``: extension map, mid, RTX
   payload type, the counters its RTCP sender reports), builds packets with ``aiortc.rtp``, takes the DTLS
   transport's SRTP session and the ICE pair nominated for component 1 (aioice). Only a plain UDP pair is
   sent to directly; any other (TURN) goes through ``RTCDtlsTransport._send_rtp``. Every name is listed here.
7. **Video frames as soon as they are whole** (:mod:`bridge.frame_assembly`). The receiver's
   jitter buffer hands a video frame out only when the next frame's first packet arrives (one
   frame interval of delay per hop), and the frame then crosses to the decoder thread and back.
   A marked video receiver's jitter buffer (``RTCRtpReceiver.__jitter_buffer``, whose ``add(packet)``
   aiortc calls with each depayloaded packet, its bytes in ``packet._data``) is replaced by
   :class:`WholeFrames`, which puts each frame straight into the remote track's queue
   (``RemoteStreamTrack._queue``) and returns none to aiortc: the decoder thread idles and still
   ends the track when the receiver stops. NACKs, RTX, REMB and receiver reports are
   aiortc's own, done before the jitter buffer. Audio keeps aiortc's path (its buffer holds four
   packets, 80 ms, back: taking it out too is a measured follow-up, not done here).
8. **DTLS with peers whose certificate is RSA** (GStreamer's webrtcbin, whipsink/whepsrc).
   ``RTCCertificate._create_ssl_context`` offers ECDHE-ECDSA suites only, so a bridge answering
   ``setup:active`` (the DTLS client) shares no cipher with a server holding an RSA certificate.
   The wrapper keeps aiortc's suites first and appends the ECDHE-RSA ones (:data:`RSA_PEER_CIPHERS`);
   the bridge's own certificate stays ECDSA (RFC 8827's mandatory one).
9. **A subscriber's RTCP on arrival** (:mod:`bridge.rtcp_fast`): the nominated pair's
   ``StunProtocol.datagram_received`` is wrapped; SRTCP is unprotected (``_rx_srtp``), counted and
   routed (``_rtp_router``) as ``RTCDtlsTransport`` does, without its queue and task wakeups.

Which codecs are pass-through is decided per peer connection: after ``setRemoteDescription`` each
transceiver holds its own negotiated copies of the codec parameters (``RTCRtpTransceiver._codecs``),
and :func:`mark_passthrough` tags those copies. Other peer connections of the same process (a
test's own players, say) keep decoding normally.

These names belong to one minor version of aiortc and aioice (:data:`TARGET_VERSIONS`, pinned in
``pyproject.toml``): :func:`install` and the bridge's command line refuse any other.
``tests/test_aiortc_compat.py`` checks each name and exercises each hook on a real pair of aiortc
peers, so an upgrade that moves one fails loudly instead of silently transcoding.
"""

from __future__ import annotations

import fractions
import random
import time
from collections.abc import Callable
from typing import Any

import aioice
import aiortc
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
from OpenSSL import SSL
from pylibsrtp import _binding as _srtp_binding_mod

from bridge.frame_assembly import FrameAssembler, TimestampUnwrap

MARK = "_hoinghi_passthrough"
VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
AUDIO_TIME_BASE = fractions.Fraction(1, 48000)
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
# The direct send path (6., bridge.direct_send)
SENDER_RUN_RTP = "_run_rtp"  # coroutine method (codec) started by RTCRtpSender.send()
SENDER_RUN_RTCP = "_run_rtcp"  # coroutine method () started by send(): its reports (bridge.rtcp_reports)
SENDER_RETRANSMIT = "_retransmit"  # coroutine method (sequence_number) called on a NACK
SENDER_RTCP_METHOD = "_handle_rtcp_packet"  # coroutine method (packet): the remote end's RTCP about it
SENDER_PRIVATE = "_RTCRtpSender__"  # name-mangling prefix of RTCRtpSender's own attributes
SENDER_STATE = ("rtp_started", "rtp_exited", "rtp_header_extensions_map", "mid", "rtx_payload_type", "ntp_timestamp",
                "rtp_timestamp", "octet_count", "packet_count", "rtcp_started", "rtcp_exited", "lsr", "lsr_time",
                "cname")
SENDER_HISTORY_SIZE = (_sender_mod, "RTP_HISTORY_SIZE")
SENDER_SSRC = "_ssrc"
SENDER_RTX_SSRC = "_rtx_ssrc"
SEQUENCE_NUMBER_ORIGIN = (_sender_mod, "random_sequence_number")  # () -> a random first sequence number
RTP_HEADER_EXTENSIONS = (_rtp_mod, "HeaderExtensions")  # the values; the sender's map serializes them
RTP_PACKET = (_rtp_mod, "RtpPacket")
RTX_WRAP = (_rtp_mod, "wrap_rtx")
DTLS_STATE_ATTR = "_state"
DTLS_CONNECTED = (_dtls_mod, "State")  # State.CONNECTED
DTLS_SRTP_ATTR = "_tx_srtp"
DTLS_SEND_RTP = "_send_rtp"
ICE_CONNECTION_ATTR = "_connection"  # RTCIceTransport -> aioice.Connection
ICE_NOMINATED_ATTR = "_nominated"  # aioice.Connection: {component: CandidatePair}
ICE_UDP_PROTOCOL = (_aioice_mod, "StunProtocol")
SRTP_SESSION_POINTER = "_srtp"  # pylibsrtp.Session: its libsrtp session, an ffi ``srtp_t *``
SRTP_LIBRARY = (_srtp_binding_mod, "lib")  # pylibsrtp's cffi lib: srtp_protect(srtp_t, void *, int *)
SRTP_FFI = (_srtp_binding_mod, "ffi")
# Frames as soon as they are whole (7.)
RECEIVER_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"  # .add(RtpPacket) -> (pli_flag, frame or None)
RTP_PACKET_DATA = "_data"  # the depayloaded bytes aiortc sets on each RtpPacket before add()
TRACK_QUEUE = "_queue"  # RemoteStreamTrack: the asyncio.Queue its recv() reads
# A subscriber's RTCP on arrival (9., bridge.rtcp_fast); recipients' handler: SENDER_RTCP_METHOD (receivers too)
ICE_DATAGRAM_METHOD = "datagram_received"  # StunProtocol: each datagram of its socket (asyncio calls it)
DTLS_RX_SRTP_ATTR = "_rx_srtp"
DTLS_ROUTER_ATTR = "_rtp_router"  # RtpRouter: route_rtcp(packet) -> the senders/receivers it concerns
ROUTER_TABLES = ("ssrc_table", "senders")  # RtpRouter: {ssrc: receiver}, {ssrc: sender} (what route_rtcp reads)
DTLS_RX_COUNTERS = ("_RTCDtlsTransport__rx_bytes", "_RTCDtlsTransport__rx_packets")  # its getStats()
RTCP_IS, RTCP_PARSE = (_rtp_mod, "is_rtcp"), (_rtp_mod.RtcpPacket, "parse")  # RFC 5761 demux; compound -> [packet]
# DTLS with RSA-certificate peers (8.)
DTLS_SSL_CONTEXT = (_dtls_mod.RTCCertificate, "_create_ssl_context")  # method (srtp_profiles) -> SSL.Context
# aiortc's own list (what the original sets; the test compares), then the suites for RSA certificates
AIORTC_DTLS_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-ECDSA-AES128-SHA",
                       "ECDHE-ECDSA-AES256-SHA")
RSA_PEER_CIPHERS = ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305",
                    "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA")

TARGET_VERSIONS = {"aiortc": "1.16", "aioice": "0.13"}  # the minor versions these names are of (pyproject pins them)
_MODULES = {"aiortc": aiortc, "aioice": aioice}


class UnsupportedVersion(RuntimeError):
    """The installed aiortc (or aioice) is not the version this module was written against."""


def check_versions() -> None:
    """Raise :class:`UnsupportedVersion` (Vietnamese message) unless the installed aiortc and aioice
    are the minor versions this module names the internals of."""
    for package, target in TARGET_VERSIONS.items():
        version = str(getattr(_MODULES[package], "__version__", "?"))
        if version.split(".")[:2] != target.split("."):
            raise UnsupportedVersion(
                f"điểm cầu cần {package} {target}.x nhưng máy đang cài {package} {version}: "
                f"bridge/aiortc_compat.py dùng API nội bộ của đúng phiên bản {target}. "
                f"Cài lại bằng: pip install '{package}~={target}.0' (hoặc sửa và kiểm thử lại mô-đun "
                f"tương thích trước khi nâng cấp)")


_original_get_decoder: Callable[[RTCRtpCodecParameters], Any] | None = None
_original_get_encoder: Callable[[RTCRtpCodecParameters], Any] | None = None
_original_create_ssl_context: Callable[..., SSL.Context] | None = None
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


class WholeFrames:
    """Stands in for a marked video receiver's jitter buffer (7.): each frame goes to the remote
    track as an ``av.Packet`` (what :class:`PacketDecoder` made of it) the moment it is whole."""

    def __init__(self, receiver: RTCRtpReceiver) -> None:
        self._receiver = receiver
        self._assembler = FrameAssembler()
        self._unwrap = TimestampUnwrap()
        self.time_base = VIDEO_TIME_BASE

    @property
    def frames(self) -> int:
        return self._assembler.frames

    def add(self, packet: Any) -> tuple[bool, None]:
        pli, frames = self._assembler.add(packet.sequence_number, packet.timestamp, packet.marker,
                                          getattr(packet, RTP_PACKET_DATA))
        track = self._receiver.track
        if frames and track is not None:
            put = getattr(track, TRACK_QUEUE).put_nowait
            for timestamp, data in frames:
                out = av.Packet(data)
                out.pts = self._unwrap(timestamp)
                out.time_base = self.time_base
                put(out)
        return pli, None


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


def packer_for(mime: str) -> Vp8Packer | H264Packer | OpusPacker:
    """A packer (no codec opened) for a lower-case mime type."""
    if mime == "audio/opus":
        return OpusPacker()
    if mime == "video/h264":
        return H264Packer()
    if mime == "video/vp8":
        return Vp8Packer()
    raise ValueError(f"no pass-through packer for {mime}")


def _get_encoder(codec: RTCRtpCodecParameters) -> Any:
    if _is_marked(codec):
        return packer_for(codec.mimeType.lower())
    assert _original_get_encoder is not None
    return _original_get_encoder(codec)


def context_ciphers(ctx: SSL.Context) -> list[str]:
    """The (D)TLS 1.2 cipher suites a context offers, in order (TLS 1.3 suites, which DTLS 1.2
    never uses, left out). Opens a connection on it: the context cannot be changed afterwards."""
    return [name for name in SSL.Connection(ctx).get_cipher_list() if not name.startswith("TLS_")]


def _with_rsa_ciphers(create: Callable[..., SSL.Context]) -> Callable[..., SSL.Context]:
    def create_ssl_context(self: Any, srtp_profiles: Any) -> SSL.Context:
        ctx = create(self, srtp_profiles)
        ctx.set_cipher_list(":".join(AIORTC_DTLS_CIPHERS + RSA_PEER_CIPHERS).encode())
        return ctx

    setattr(create_ssl_context, MARK, True)
    return create_ssl_context


def install() -> None:
    """Route aiortc's codec lookups through the pass-through hooks and let its DTLS take peers with
    RSA certificates (idempotent, process-wide).

    Unmarked codecs still get aiortc's own decoders and encoders. Refuses (:class:`UnsupportedVersion`)
    an aiortc whose internals may not be the ones named here."""
    global _original_get_decoder, _original_get_encoder, _original_create_ssl_context
    if not installed():
        check_versions()
    module, name = RECEIVER_DECODER_LOOKUP
    if getattr(module, name) is not _get_decoder:
        _original_get_decoder = getattr(module, name)
        setattr(module, name, _get_decoder)
    module, name = SENDER_ENCODER_LOOKUP
    if getattr(module, name) is not _get_encoder:
        _original_get_encoder = getattr(module, name)
        setattr(module, name, _get_encoder)
    setattr(*NTP_CLOCK, fast_ntp_time)
    owner, name = DTLS_SSL_CONTEXT
    if not getattr(getattr(owner, name), MARK, False):
        _original_create_ssl_context = getattr(owner, name)
        setattr(owner, name, _with_rsa_ciphers(_original_create_ssl_context))


def installed() -> bool:
    return (getattr(*RECEIVER_DECODER_LOOKUP) is _get_decoder
            and getattr(*SENDER_ENCODER_LOOKUP) is _get_encoder
            and getattr(getattr(*DTLS_SSL_CONTEXT), MARK, False))


def mark_passthrough(pc: RTCPeerConnection, kinds: tuple[str, ...] = ("audio", "video"),
                     whole_frames: bool = True) -> None:
    """Make every transceiver of ``pc`` forward encoded frames instead of decoding/encoding.

    Its video receivers hand each frame on as soon as it is whole (:class:`WholeFrames`) unless
    ``whole_frames`` is False (aiortc's jitter buffer and decoder thread, kept for comparison).
    Call it right after ``setRemoteDescription`` (the negotiated codec copies exist from then on,
    and no media flows before the answer is applied)."""
    install()
    for transceiver in pc.getTransceivers():
        if transceiver.kind not in kinds:
            continue
        for codec in getattr(transceiver, TRANSCEIVER_CODECS_ATTR):
            setattr(codec, MARK, True)
        receiver = transceiver.receiver
        if whole_frames and transceiver.kind == "video" and \
                not isinstance(getattr(receiver, RECEIVER_JITTER_BUFFER), WholeFrames):
            setattr(receiver, RECEIVER_JITTER_BUFFER, WholeFrames(receiver))


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
