"""What the bridge checks and changes in an SDP offer before handing it to aiortc."""

from __future__ import annotations

import re

from aiortc import sdp
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters

from bridge import aiortc_compat
from bridge.errors import BridgeError

VIDEO_MIME_TYPES = ("video/vp8", "video/h264")
AUDIO_MIME_TYPE = "audio/opus"
MAX_OFFER_BYTES = 64 * 1024

_MDNS_CANDIDATE = re.compile(r"^a=candidate:\S+ \d+ \S+ \d+ \S+\.local \d+ .*$", re.IGNORECASE)


def strip_mdns_candidates(text: str) -> str:
    """Drop ``.local`` (mDNS) host candidates: aioice would spend ~1 s failing to resolve them
    inside setRemoteDescription, and the peer-reflexive address connects anyway."""
    lines = text.replace("\r\n", "\n").split("\n")
    kept = [line for line in lines if not _MDNS_CANDIDATE.match(line)]
    return "\r\n".join(kept)


def parse_offer(text: str) -> sdp.SessionDescription:
    """Parse and sanity-check an offer; raises 400 ``sdp_invalid`` with a Vietnamese message."""
    if not text.strip() or len(text) > MAX_OFFER_BYTES:
        raise BridgeError(400, "sdp_invalid", "Đề nghị SDP trống hoặc quá lớn")
    try:
        description = sdp.SessionDescription.parse(text)
    except Exception:
        raise BridgeError(400, "sdp_invalid", "Đề nghị SDP không đúng định dạng") from None
    media = [m for m in description.media if m.kind in ("audio", "video")]
    if not text.lstrip().startswith("v=0") or not media:
        raise BridgeError(400, "sdp_invalid", "Đề nghị SDP không đúng định dạng hoặc không có kênh âm thanh/hình ảnh")
    for m in media:
        if m.ice is None or not m.ice.usernameFragment or not m.ice.password or m.dtls is None \
                or not m.dtls.fingerprints:
            raise BridgeError(400, "sdp_invalid", "Đề nghị SDP thiếu thông tin ICE hoặc DTLS")
    return description


def rtx_ssrcs(description: sdp.SessionDescription) -> set[int]:
    """SSRCs the offerer uses for retransmissions (``a=ssrc-group:FID main rtx``)."""
    found: set[int] = set()
    for m in description.media:
        for group in m.ssrc_group:
            if group.semantic == "FID":
                found.update(int(s) for s in group.items[1:])
    return found


def video_codec_for(media: sdp.MediaDescription, meeting: RTCRtpCodecCapability | None
                    ) -> RTCRtpCodecParameters | None:
    """The codec a video m-line is answered with: the offer's first variant of the meeting's codec
    (any H.264 profile aiortc takes: the bytes are forwarded, not decoded), or, while the meeting
    has none, the offer's first codec the relay forwards (VP8 or H.264), in the offer's order."""
    for codec in aiortc_compat.common_codecs("video", media.rtp.codecs):
        mime = codec.mimeType.lower()
        if (mime == meeting.mimeType.lower()) if meeting is not None else (mime in VIDEO_MIME_TYPES):
            return codec
    return None


def capability(codec: RTCRtpCodecParameters) -> RTCRtpCodecCapability:
    return RTCRtpCodecCapability(mimeType=codec.mimeType, clockRate=codec.clockRate, channels=codec.channels,
                                 parameters=dict(codec.parameters))


OPUS = RTCRtpCodecCapability(mimeType="audio/opus", clockRate=48000, channels=2)
VIDEO_RTX = RTCRtpCodecCapability(mimeType="video/rtx", clockRate=90000)


def preferences(kind: str, video: RTCRtpCodecCapability | None) -> list[RTCRtpCodecCapability]:
    """Codec preferences that pin a transceiver to exactly one codec (video keeps RTX)."""
    if kind == "audio":
        return [OPUS]
    assert video is not None
    return [video, VIDEO_RTX]


def check_codecs(description: sdp.SessionDescription, video: RTCRtpCodecCapability | None) -> None:
    """Refuse (422 ``codec_unsupported``: the offer is well formed, its codecs are not usable) an
    offer whose media the relay cannot forward as is, or without the meeting's video codec."""
    for m in description.media:
        if m.kind == "audio" and not any(c.mimeType.lower() == AUDIO_MIME_TYPE for c in m.rtp.codecs):
            raise BridgeError(422, "codec_unsupported", "Điểm cầu chỉ nhận âm thanh Opus")
        if m.kind == "video" and video_codec_for(m, video) is None:
            if video is None:
                raise BridgeError(422, "codec_unsupported", "Điểm cầu chỉ nhận hình ảnh VP8 hoặc H.264")
            name = video.mimeType.split("/")[1]
            raise BridgeError(422, "codec_unsupported",
                              f"Hội nghị đang dùng hình ảnh {name}: thiết bị phải hỗ trợ mã này")
