"""Keyframes: recognising them in encoded frames, and asking a publisher for one without flooding it.

Plain code: :class:`KeyframeThrottle` takes the time as an argument; :class:`KeyframeRequester`
wraps it with the event loop's timer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("hoinghi.bridge.keyframes")

H264_IDR = 5
H264_SPS = 7


def is_keyframe(mime_type: str, data: bytes) -> bool:
    """Whether an encoded frame (as aiortc depayloads it) can be decoded on its own.

    VP8: bit 0 of the first byte of the frame tag is 0 for a key frame (RFC 6386 §9.1).
    H.264 (Annex B, start codes): the access unit carries an IDR slice (5) or an SPS (7).
    Audio: every Opus packet stands alone."""
    mime = mime_type.lower()
    if mime == "video/vp8":
        return bool(data) and data[0] & 0x01 == 0
    if mime == "video/h264":
        return any(nal in (H264_IDR, H264_SPS) for nal in h264_nal_types(data))
    return True


def h264_nal_types(data: bytes) -> list[int]:
    """NAL unit types of an Annex B byte stream (3- or 4-byte start codes)."""
    types = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0 and i + 3 < len(data):
        types.append(data[i + 3] & 0x1F)
        i = data.find(b"\x00\x00\x01", i + 3)
    return types


class KeyframeThrottle:
    """At most one request per ``interval`` seconds; a request inside the window is deferred to
    the window's end (and merged with any other deferred request), never dropped."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last_sent: float | None = None
        self.pending = False

    def request(self, now: float) -> float | None:
        """Returns the delay after which to send (0 = now), or None if one is already deferred."""
        if self.pending:
            return None
        if self.last_sent is None or now - self.last_sent >= self.interval:
            self.last_sent = now
            return 0.0
        self.pending = True
        return self.last_sent + self.interval - now

    def fire(self, now: float) -> None:
        """The deferred request was sent at ``now``."""
        self.pending = False
        self.last_sent = now


class KeyframeRequester:
    """Sends keyframe requests to one publisher through ``send``, throttled per publisher."""

    def __init__(self, send: Callable[[], Awaitable[None]], interval: float = 0.3,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._send = send
        self._loop = loop or asyncio.get_running_loop()
        self._throttle = KeyframeThrottle(interval)
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.requested = 0
        self.sent = 0
        self.closed = False

    def request(self) -> None:
        if self.closed:
            return
        self.requested += 1
        delay = self._throttle.request(self._loop.time())
        if delay is None:
            return
        if delay <= 0:
            self._spawn()
        else:
            self._timer = self._loop.call_later(delay, self._deferred)

    def _deferred(self) -> None:
        self._timer = None
        self._throttle.fire(self._loop.time())
        self._spawn()

    def _spawn(self) -> None:
        if self.closed:
            return
        self.sent += 1
        task = self._loop.create_task(self._send_safely())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_safely(self) -> None:
        try:
            await self._send()
        except Exception:  # a failing publisher must not break the relay loop
            log.warning("keyframe request failed", exc_info=True)

    async def close(self) -> None:
        """No more requests; those on their way are cancelled and awaited."""
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# VP8 payload descriptor (RFC 7741 §4.2): a subscriber moved between renditions keeps one run of
# picture ids (bridge.direct_send.DirectSender.splice)
VP8_PICTURE_IDS = 1 << 15


def _vp8_picture_id_at(payload: bytes) -> tuple[int, int] | None:
    """(offset, length) of the picture id in a VP8 payload descriptor (RFC 7741 §4.2), if any."""
    if len(payload) < 3 or not payload[0] & 0x80 or not payload[1] & 0x80:
        return None
    return (2, 2) if payload[2] & 0x80 else (2, 1)


def vp8_picture_id(payload: bytes) -> int | None:
    at = _vp8_picture_id_at(payload)
    if at is None or len(payload) < at[0] + at[1]:
        return None
    if at[1] == 2:
        return ((payload[2] & 0x7F) << 8) | payload[3]
    return payload[2] & 0x7F


def with_picture_id_delta(payload: bytes, delta: int) -> bytes:
    """``payload`` with its VP8 picture id advanced by ``delta`` (written in the 15-bit form)."""
    at = _vp8_picture_id_at(payload)
    picture_id = vp8_picture_id(payload)
    if at is None or picture_id is None:
        return payload
    new = (picture_id + delta) % VP8_PICTURE_IDS
    return payload[:2] + bytes((0x80 | new >> 8, new & 0xFF)) + payload[at[0] + at[1]:]
