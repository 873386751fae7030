"""The shared screen ("content", issue #17) in a recording: its own video stream, written as
received like the programme's picture (no decode, no encode).

A segment carries a content stream when the screen is shared as the segment opens; a share that
starts or ends mid-segment closes the segment at the programme's next keyframe (the writer asks for
one), so a segment without content has no content stream at all — every player plays it as
before — and one with content has a second video stream from its start. The share is over once
no frame of it came for ``IDLE_SECONDS`` (the programme's content timeline simply goes quiet).
"""

from __future__ import annotations

import fractions
from typing import Any

import av

VIDEO_RATE = 90000
IDLE_SECONDS = 5.0  # a still screen still sends a frame a second or so
WEBM_CODECS = ("video/vp8", "video/vp9", "video/av1")
DEFAULT_SIZE = (1280, 720)


def vp8_size(data: bytes) -> tuple[int, int]:
    """Width and height from a VP8 keyframe header (RFC 6386 §9.1), (0, 0) if not one."""
    if len(data) >= 10 and data[3:6] == b"\x9d\x01\x2a":
        return int.from_bytes(data[6:8], "little") & 0x3FFF, int.from_bytes(data[8:10], "little") & 0x3FFF
    return 0, 0


class ContentTrack:
    """The content timeline as the writer thread sees it (see the module docstring)."""

    def __init__(self) -> None:
        self.codec = ""
        self.size = DEFAULT_SIZE
        self._anchor: int | None = None  # recording position = pts + anchor (as the programme's picture)
        self._last_t: float | None = None  # when its last frame arrived (recording seconds)
        self._waiting_keyframe = True
        self._last_position = -1
        self.frames = 0

    def shared(self, t: float) -> bool:
        return self._last_t is not None and t - self._last_t < IDLE_SECONDS

    def wants_new_segment(self, segment: Any, t: float) -> bool:
        """The share started or ended since ``segment`` opened."""
        return (segment.content is not None) != (self.shared(t) and self._fits(segment.path.suffix))

    def _fits(self, suffix: str) -> bool:
        return bool(self.codec) and (suffix != ".webm" or self.codec in WEBM_CODECS)

    def add_stream(self, container: Any, suffix: str, t: float) -> Any:
        """The segment's content stream (None while nothing is shared)."""
        if not (self.shared(t) and self._fits(suffix)):
            return None
        width, height = self.size
        stream = container.add_mux_stream(self.codec.split("/")[1], width=width, height=height)
        stream.time_base = fractions.Fraction(1, 1000)
        stream.metadata["title"] = "content"
        self._waiting_keyframe = True
        self._last_position = -1
        return stream

    def packet(self, segment: Any, data: bytes, pts: int, keyframe: bool, codec: str, t: float) -> av.Packet | None:
        """The packet to mux into ``segment``'s content stream, if any."""
        self._last_t = t
        self.codec = codec or self.codec
        if keyframe and codec == "video/vp8" and vp8_size(data)[0]:
            self.size = vp8_size(data)
        if self._anchor is None:
            self._anchor = round(t * VIDEO_RATE) - pts
        position = pts + self._anchor
        if segment is None or segment.content is None:
            return None
        if self._waiting_keyframe:
            if not keyframe:
                return None
            self._waiting_keyframe = False
        if position < segment.video_base or position <= self._last_position:
            return None  # before the segment began, or backwards (a muxer refuses it)
        packet = av.Packet(data)
        packet.pts = packet.dts = position - segment.video_base
        packet.time_base = fractions.Fraction(1, VIDEO_RATE)
        packet.stream = segment.content
        if keyframe:
            packet.is_keyframe = True
        self._last_position = position
        self.frames += 1
        return packet
