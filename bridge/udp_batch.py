"""A frame's datagrams to one address in as few system calls as the kernel allows.

Straight to the socket (no asyncio transport in between) always; in one ``sendmsg`` per frame
with UDP segmentation only when asked for (``gso=True``; see :data:`GSO_DEFAULT` for why not by
default).

A relay sends each subscriber every packet of every frame, and on a relay with many subscribers
the ``sendto`` system calls are most of its work (on loopback the kernel also delivers each one
within the call). Linux's UDP generic segmentation offload (``UDP_SEGMENT``, Linux 4.18) takes a
run of equally sized datagrams (the last may be shorter) in one ``sendmsg`` and cuts them apart
below the socket: a frame's packets have one size but the last (the packetizers cut at a fixed
payload size, and SRTP adds the same tag to each), so a frame usually leaves in one call.

:class:`DatagramBatch` writes to the UDP socket under an asyncio datagram transport (a duplicate
of its descriptor) while that transport has nothing buffered, and hands everything to the
transport otherwise (a full socket buffer, an error to report), so datagrams never overtake each
other. A kernel or device that refuses segmentation (``EIO``: no checksum offload) turns it off
for that socket; the datagrams then go one ``sendto`` each.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
import sys
from typing import Any

from bridge import aiortc_compat as compat

log = logging.getLogger("hoinghi.bridge.udp_batch")
_ffi: Any = getattr(*compat.SRTP_FFI)

UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)  # linux/udp.h
MAX_SEGMENTS = 64  # UDP_MAX_SEGMENTS in the kernel
MAX_PAYLOAD = 65000  # one sendmsg carries at most one UDP datagram's worth (64 KiB)
_SEGMENT_SIZE = struct.Struct("=H")
GSO_SUPPORTED = sys.platform == "linux"
# Off unless asked for: over loopback (and veth) the kernel hands the receiving socket the batch
# unsegmented, and a receiver that falls behind then loses more datagrams at once (tests/test_audio
# lost an audio packet 3 times in 12 loaded runs with it, 0 in 12 without; aiortc's audio buffer
# stalls 320 ms on one loss). Where the receivers sit across a real NIC it is worth measuring on.
GSO_DEFAULT = False


_scratch: list[Any] = []  # [view, base pointer, int *]: see scratch


def scratch(needed: int) -> list[Any]:
    """Where a frame's datagrams are built (and SRTP-protected in place, bridge.direct_send) one
    after another: one buffer for the whole process, as a writable memoryview, its cffi pointer and
    an ``int *`` for libsrtp's length; grown when a frame does not fit. A frame is sent within one
    call, and what the kernel does not take at once the asyncio transport copies."""
    if not _scratch or needed > len(_scratch[0]):
        base = _ffi.new("unsigned char[]", max(needed, 2 * len(_scratch[0]) if _scratch else 256 * 1024))
        _scratch[:] = [memoryview(_ffi.buffer(base)), base, _ffi.new("int *")]
    return _scratch


def run_end(datagrams: list[bytes], start: int) -> int:
    """Where the run that starts at ``start`` ends: datagrams all the size of the first, but the
    last, which may be shorter; at most MAX_SEGMENTS of them and MAX_PAYLOAD bytes."""
    n = len(datagrams)
    size = len(datagrams[start])
    if start == 0 and n <= MAX_SEGMENTS and size * n <= MAX_PAYLOAD and len(datagrams[-1]) <= size \
            and len(set(map(len, datagrams[:-1]))) == 1:
        return n  # the usual frame: one run, no loop
    limit = min(n, start + MAX_SEGMENTS, start + max(1, MAX_PAYLOAD // max(size, 1)))
    end = start + 1
    while end < limit and len(datagrams[end]) == size:
        end += 1
    if end < limit and len(datagrams[end]) < size:
        end += 1
    return end


def runs(datagrams: list[bytes]) -> list[tuple[int, int]]:
    """``datagrams`` as (start, end) runs, each one segmentation call."""
    out = []
    start = 0
    while start < len(datagrams):
        end = run_end(datagrams, start)
        out.append((start, end))
        start = end
    return out


class DatagramBatch:
    """Sends datagrams to one address through an asyncio datagram ``transport`` (see module docs)."""

    def __init__(self, transport: Any, gso: bool = GSO_DEFAULT) -> None:
        self.transport = transport
        self.gso = gso and GSO_SUPPORTED
        self.calls = 0  # system calls made here (sendmsg or sendto)
        self._cmsgs: dict[int, list[tuple[int, int, bytes]]] = {}
        self._sock: socket.socket | None = None
        raw = transport.get_extra_info("socket")
        if raw is not None and raw.type == socket.SOCK_DGRAM:
            self._sock = socket.socket(raw.family, raw.type, raw.proto, fileno=os.dup(raw.fileno()))
            self._sock.setblocking(False)

    def send(self, datagrams: list[bytes], addr: Any) -> None:
        sock = self._sock
        transport = self.transport
        if sock is None or transport.get_write_buffer_size() or transport.is_closing():
            self._through_transport(datagrams, 0, addr)
            return
        n = len(datagrams)
        start = 0
        while start < n:
            end = run_end(datagrams, start) if self.gso else start + 1
            try:
                self.calls += 1
                if end - start == 1:
                    sock.sendto(datagrams[start], addr)
                else:
                    segments = datagrams if end - start == n else datagrams[start:end]
                    sock.sendmsg(segments, self._cmsg(len(datagrams[start])), 0, addr)
            except (BlockingIOError, InterruptedError):
                self._through_transport(datagrams, start, addr)  # queued there, in order
                return
            except OSError as exc:
                if end - start > 1 and exc.errno in (errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP):
                    log.info("UDP segmentation refused (%s): one sendto per packet from now on", exc)
                    self.gso = False
                    self.send(datagrams[start:], addr)
                    return
                self._through_transport(datagrams, start, addr)  # the transport reports the error its way
                return
            start = end

    def fileno(self) -> int | None:
        """The descriptor datagrams are written to directly (None: only through the transport)."""
        return self._sock.fileno() if self._sock is not None else None

    @property
    def family(self) -> int:
        return self._sock.family if self._sock is not None else -1

    def _cmsg(self, size: int) -> list[tuple[int, int, bytes]]:
        """The control message that asks for ``size``-byte segments (made once per size)."""
        cmsg = self._cmsgs.get(size)
        if cmsg is None:
            cmsg = self._cmsgs[size] = [(socket.SOL_UDP, UDP_SEGMENT, _SEGMENT_SIZE.pack(size))]
        return cmsg

    def _through_transport(self, datagrams: list[bytes], start: int, addr: Any) -> None:
        sendto = self.transport.sendto
        for i in range(start, len(datagrams)):
            sendto(datagrams[i], addr)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
