"""What a frame becomes on the wire: packetized once for every subscriber of a timeline
(:class:`FramePacker`), and remembered per subscriber as it was sent, so a NACKed packet can be
built again (:class:`SentHistory`); a subscriber's header extension block (:class:`ExtensionBlock`)."""

from __future__ import annotations

import struct
from typing import Any

import av

from bridge import aiortc_compat as compat
from bridge import native_send
from bridge.keyframes import with_picture_id_delta

_HEADER = struct.Struct("!BBHLL")
_EXTENSION_HEADER = struct.Struct("!HH")
_HeaderExtensions: Any = getattr(*compat.RTP_HEADER_EXTENSIONS)
# (first sequence number, RTP timestamp, extension block, payloads, VP8 picture id delta, first header byte)
Record = tuple[int, int, bytes, list[bytes], int, int]


class FramePacker:
    """Packetizes each encoded frame once for every subscriber of one timeline.

    The subscribers of a timeline receive the same ``av.Packet`` objects one after another, so
    the payloads of the last packet are kept. A timeline carries one codec (subscribers are
    pinned to the source's codec); the VP8 picture id advances once per frame for everyone."""

    def __init__(self) -> None:
        self._packers: dict[str, compat.Vp8Packer | compat.H264Packer | compat.OpusPacker] = {}
        self._last: tuple[av.Packet, str] | None = None
        self._result: tuple[list[bytes], int] = ([], 0)
        self._native: native_send.Frame | None = None
        self.frames = 0  # frames packed so far: the last one's serial number
        self._recent: list[tuple[int, list[bytes]] | None] = [None] * native_send.RING

    def pack(self, packet: av.Packet, mime: str) -> tuple[list[bytes], int]:
        last = self._last
        if last is not None and last[0] is packet and last[1] == mime:
            return self._result
        packer = self._packers.get(mime)
        if packer is None:
            packer = self._packers[mime] = compat.packer_for(mime)
        self._result = packer.pack(packet)
        self._native = None
        self._last = (packet, mime)  # holds the packet: its identity cannot be reused meanwhile
        self.frames += 1
        self._recent[self.frames % native_send.RING] = (self.frames, self._result[0])
        return self._result

    def recent(self, serial: int) -> list[bytes] | None:
        """The payloads of frame ``serial`` (one of the last ``native_send.RING``), or None."""
        held = self._recent[serial % native_send.RING]
        return held[1] if held is not None and held[0] == serial else None

    def native(self) -> native_send.Frame:
        """The last frame packed, joined for the C send path (made once for every subscriber)."""
        frame = self._native
        if frame is None:
            frame = self._native = native_send.Frame(self._result[0])
        return frame


class SentHistory:
    """The last ``size`` packets one subscriber was sent, by sequence number modulo ``size``: each
    slot holds its frame's record (the payloads are the timeline's, shared by every subscriber),
    from which the packet is built again, before SRTP, when it is asked for."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._slots: list[Record | None] = [None] * size

    def add(self, seq: int, timestamp: int, extension: bytes, payloads: list[bytes], delta: int,
            first_byte: int) -> None:
        record = (seq, timestamp, extension, payloads, delta, first_byte)
        slots, size = self._slots, self.size
        for number in range(seq, seq + len(payloads)):
            slots[number % size] = record

    def clear(self) -> None:
        self._slots[:] = [None] * self.size

    def _find(self, sequence_number: int) -> tuple[Record, int, bytes] | None:
        record = self._slots[sequence_number % self.size]
        if record is None:
            return None
        index = (sequence_number - record[0]) & 0xFFFF
        if index >= len(record[3]):
            return None
        payload, delta = record[3][index], record[4]
        return record, index, with_picture_id_delta(payload, delta) if delta else payload

    def holds(self, sequence_number: int) -> bool:
        """Whether packet ``sequence_number`` was sent and is still held."""
        record = self._slots[sequence_number % self.size]
        return record is not None and (sequence_number - record[0]) & 0xFFFF < len(record[3])

    def payload(self, sequence_number: int) -> bytes | None:
        """Packet ``sequence_number``'s payload as it was sent (None: no longer held)."""
        found = self._find(sequence_number)
        return None if found is None else found[2]

    def packet(self, sequence_number: int, payload_type: int, ssrc: int) -> bytes | None:
        """Packet ``sequence_number`` as it was sent, before SRTP (None: no longer held)."""
        found = self._find(sequence_number)
        if found is None:
            return None
        (_, timestamp, extension, payloads, _, first_byte), index, payload = found
        marker = 0x80 if index == len(payloads) - 1 else 0
        return _HEADER.pack(first_byte, payload_type | marker, sequence_number, timestamp, ssrc) + extension + payload


class ExtensionBlock:
    """A sender's header extension block (mid, abs-send-time) as its map serializes it. The layout
    is fixed per sender: serialized once (at the first call), then only the 3 time bytes change."""

    def __init__(self, extensions_map: Any, mid: str | None) -> None:
        self.extensions_map = extensions_map
        self.mid = mid
        self._template: tuple[bytes, bytes | None] | None = None

    def layout(self) -> tuple[bytes, int]:
        """The block with abs-send-time 0, and where its 3 bytes are (-1: not negotiated)."""
        template = self._template
        if template is None:
            template = self._template = self._make_template()
        head, tail = template
        return (head, -1) if tail is None else (head + bytes(3) + tail, len(head))

    def __call__(self, abs_send_time: int) -> bytes:
        template = self._template
        if template is None:
            template = self._template = self._make_template()
        head, tail = template
        if tail is None:
            return head
        return head + abs_send_time.to_bytes(3, "big") + tail

    def _make_template(self) -> tuple[bytes, bytes | None]:
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
