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
5. **A cheaper clock.** The sender stamps every RTP packet with ``aiortc.clock.current_ntp_time()``,
   which goes through ``datetime`` objects (~8 % of a relay's CPU with many subscribers); the same
   value is computed from ``time.time()``.

Which codecs are pass-through is decided per peer connection: after ``setRemoteDescription``
each transceiver holds its own negotiated copies of the codec parameters
(``RTCRtpTransceiver._codecs``), and :func:`mark_passthrough` tags those copies. Other peer
connections of the same process (a test's own players, say) keep decoding normally.

``tests/test_aiortc_compat.py`` checks each of these names, so an aiortc upgrade that moves one
fails loudly instead of silently transcoding.
"""

from __future__ import annotations

import fractions
import random
import time
from collections.abc import Callable
from typing import Any

import av
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc import clock as _clock_mod
from aiortc import codecs as _codecs_mod
from aiortc import rtcpeerconnection as _pc_mod
from aiortc import rtcrtpreceiver as _receiver_mod
from aiortc import rtcrtpsender as _sender_mod
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
TRANSCEIVER_CODECS_ATTR = "_codecs"
VP8_PACKETIZE = "_packetize"  # classmethod (buffer, picture_id) -> payloads
H264_SPLIT = "_split_bitstream"  # staticmethod (annex-b bytes) -> NAL units
H264_PACKETIZE = "_packetize"  # classmethod (NAL units) -> payloads
NTP_CLOCK = (_clock_mod, "current_ntp_time")
COMMON_CODECS_FUNCTION = (_pc_mod, "find_common_codecs")
LOCAL_CODECS_TABLE = (_codecs_mod, "CODECS")

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
        mime = codec.mimeType.lower()
        if mime == "audio/opus":
            return OpusPacker()
        if mime == "video/h264":
            return H264Packer()
        if mime == "video/vp8":
            return Vp8Packer()
        raise ValueError(f"no pass-through packer for {mime}")
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


async def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Ask the publisher behind ``receiver`` for a keyframe of stream ``media_ssrc``."""
    await getattr(receiver, RECEIVER_PLI_METHOD)(media_ssrc)
