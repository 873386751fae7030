"""A subscriber's frame sent from Python: what the C path (bridge.native_send) does, the same
bytes, where it is not built; and a TURN pair's way, through aiortc's own asynchronous send."""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from collections.abc import Callable
from typing import Any

import pylibsrtp

from bridge import aiortc_compat as compat
from bridge.keyframes import with_picture_id_delta
from bridge.udp_batch import DatagramBatch, scratch

_HEADER = struct.Struct("!BBHLL")
_srtp_protect: Callable[[Any, Any, Any], int] = getattr(*compat.SRTP_LIBRARY).srtp_protect
_SRTP_TRAILER = 16  # the longest tag srtp_protect appends (AES-GCM; no MKI is negotiated)


class PythonSend:
    """The Python send path of a :class:`bridge.direct_send.DirectSender`."""

    dtls: Any
    payload_type: int
    ssrc: int
    _batch: DatagramBatch | None
    _addr: Any
    _slow_queue: deque[bytes]
    _slow_task: asyncio.Task[None] | None

    def _send_python(self, direct: bool, payloads: list[bytes], delta: int, first_byte: int, seq: int,
                     timestamp: int, extension: bytes) -> int:
        """What the C path does (bridge.native_send), in Python; and a TURN pair's way."""
        if delta:
            payloads = [with_picture_id_delta(p, delta) for p in payloads]
        last = len(payloads) - 1
        pack, pt, ssrc = _HEADER.pack, self.payload_type, self.ssrc
        octets = sum(map(len, payloads))
        datagrams: list[Any] = []
        if direct:  # each packet is built and SRTP-protected in place, back to back in the scratch buffer
            session = getattr(getattr(self.dtls, compat.DTLS_SRTP_ATTR), compat.SRTP_SESSION_POINTER)[0]
            view, base, length = scratch(octets + len(payloads) * (12 + len(extension) + _SRTP_TRAILER))
            at = 0
        for i, payload in enumerate(payloads):
            header = pack(first_byte, pt | 0x80 if i == last else pt, seq, timestamp, ssrc) + extension
            seq = (seq + 1) & 0xFFFF
            if not direct:
                datagrams.append(header + payload)
                continue
            body = at + len(header)
            end = body + len(payload)
            view[at:body] = header
            view[body:end] = payload
            length[0] = end - at
            status = _srtp_protect(session, base + at, length)
            if status:
                raise pylibsrtp.Error(f"srtp_protect: {status}")
            end = at + length[0]
            datagrams.append(view[at:end])
            at = end
        if direct:
            assert self._batch is not None
            self._batch.send(datagrams, self._addr)
        else:  # a TURN pair: aiortc's own (asynchronous) path, plain packets in order, by one task
            self._slow_queue.extend(datagrams)
            if self._slow_task is None or self._slow_task.done():
                self._slow_task = asyncio.get_running_loop().create_task(self._send_slow())
        return octets

    async def _send_slow(self) -> None:
        queue = self._slow_queue
        try:
            while queue:
                await getattr(self.dtls, compat.DTLS_SEND_RTP)(queue.popleft())
        except ConnectionError:
            queue.clear()
