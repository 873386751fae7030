"""The relay's per-subscriber send in C, when it is built: ``bridge/native/rtp_send.c``.

:class:`bridge.direct_send.DirectSender` sends a frame to one subscriber with a few dozen Python
operations per packet (header, copy, SRTP, ``sendto``); at ~120 packets per subscriber per second
they were most of a relay's CPU. ``hn_send_frame`` does that work in one call: the packets built
in one buffer, protected by the very ``srtp_protect`` of pylibsrtp's libsrtp that aiortc uses (its
address passed in, with the subscriber's SRTP session), and written with one ``sendmmsg``. What the
socket does not take (its buffer full) goes to the asyncio transport in order, as
:class:`bridge.udp_batch.DatagramBatch` does.

It is compiled by ``python -m bridge.native_send`` (``make install`` runs it: cffi and a C
compiler) into ``bridge/_rtp_send*.so``. Without it, or with ``HOINGHI_BRIDGE_NATIVE_SEND=0``, the
Python path sends the same bytes (``tests/test_native_send.py`` compares them).
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import sys
from pathlib import Path
from typing import Any

from bridge import aiortc_compat as compat

log = logging.getLogger("hoinghi.bridge.native_send")

ROOT = Path(__file__).resolve().parent.parent
SOURCE = Path(__file__).resolve().parent / "native" / "rtp_send.c"
MODULE = "bridge._rtp_send"
CDEF = """
int hn_send_frame(int fd, const char *addr, int addrlen, uintptr_t session, uintptr_t protect,
                  const char *payloads, const int *lengths, int n,
                  int first_byte, int payload_type, int sequence_number, uint32_t timestamp, uint32_t ssrc,
                  const char *extension, int extension_length, int picture_id_delta,
                  char *out, int out_size, int *offsets, int *error);
typedef struct {
    uint32_t frame; uint32_t serial; uint32_t sequence_number; uint32_t count; uint32_t timestamp;
    uint32_t abs_send_time;
} hn_sent;
typedef struct {
    int fd; char addr[28]; int addrlen; uintptr_t session; int payload_type; uint32_t ssrc; int first_byte;
    uint32_t sequence_number; uint32_t timestamp_origin; char extension[64]; int extension_length; int abs_at;
    int picture_id_delta; uint64_t packets; uint64_t octets; uint32_t frames; uint32_t last_timestamp;
    uint64_t last_ntp; hn_sent ring[64];
} hn_sub;
int hn_fanout_frame(hn_sub **subs, int start, int count, uintptr_t protect,
                    const char *payloads, const int *lengths, int n, int octets, uint32_t timestamp, uint32_t serial,
                    char *out, int out_size, int *offsets, int *sent, int *error);
"""
RING = 64  # HN_RING: the frames a subscriber sent from the C loop that it can still be asked for
EXTENSION_MAX = 64  # HN_EXTENSION_MAX
MAX_PACKETS = 256  # HN_MAX_PACKETS: a frame of more packets takes the Python path
SRTP_TRAILER = 16

_srtp_ffi: Any = getattr(*compat.SRTP_FFI)
_srtp_lib: Any = getattr(*compat.SRTP_LIBRARY)


def build() -> str:
    """Compile ``rtp_send.c`` into ``bridge/_rtp_send*.so``; returns its path."""
    import shutil
    import tempfile

    import cffi

    builder = cffi.FFI()
    builder.cdef(CDEF)
    builder.set_source(MODULE, SOURCE.read_text(), extra_compile_args=["-O2", "-std=gnu11"])
    with tempfile.TemporaryDirectory() as tmp:
        built = Path(builder.compile(tmpdir=tmp, verbose=False))
        target = Path(__file__).resolve().parent / built.name
        shutil.copyfile(built, target.with_suffix(".tmp"))
        os.replace(target.with_suffix(".tmp"), target)
    return str(target)


def _load() -> tuple[Any, str]:
    """The compiled module, or None and why not."""
    if os.environ.get("HOINGHI_BRIDGE_NATIVE_SEND", "1") == "0":
        return None, "turned off (HOINGHI_BRIDGE_NATIVE_SEND=0)"
    try:
        from bridge import _rtp_send  # type: ignore[attr-defined]
    except ImportError:
        why = "bridge/_rtp_send is not built (make install builds it with a C compiler)"
        log.info("%s: the send path is Python's", why)
        return None, why
    return _rtp_send, ""


_module, WHY_NOT = _load()
ENABLED = _module is not None
_ffi: Any = _module.ffi if _module is not None else None
_lib: Any = _module.lib if _module is not None else None
PROTECT = int(_srtp_ffi.cast("uintptr_t", _srtp_ffi.addressof(_srtp_lib, "srtp_protect")))


def sockaddr(family: int, addr: Any) -> bytes | None:
    """``addr`` (as asyncio gives it) as a ``struct sockaddr_in`` / ``sockaddr_in6``; None for
    anything else (that subscriber takes the Python path)."""
    try:
        if family == socket.AF_INET:
            return struct.pack("=H", socket.AF_INET) + struct.pack("!H", addr[1]) + socket.inet_aton(addr[0]) + bytes(8)
        if family == socket.AF_INET6:
            flow, scope = (addr[2], addr[3]) if len(addr) >= 4 else (0, 0)
            return (struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", addr[1], flow)
                    + socket.inet_pton(socket.AF_INET6, addr[0]) + struct.pack("=I", scope))
    except (OSError, TypeError, IndexError, struct.error):
        return None
    return None


def session_address(session: Any) -> int:
    """The address of a pylibsrtp session's libsrtp context (``srtp_t``)."""
    return int(_srtp_ffi.cast("uintptr_t", getattr(session, compat.SRTP_SESSION_POINTER)[0]))


class Frame:
    """A frame's payloads as the C call takes them: joined, with their lengths (made once per
    frame for every subscriber of a timeline)."""

    __slots__ = ("count", "joined", "lengths", "octets")

    def __init__(self, payloads: list[bytes]) -> None:
        self.joined = b"".join(payloads)
        self.lengths = _ffi.new("int[]", [len(p) for p in payloads])
        self.count = len(payloads)
        self.octets = len(self.joined)


class Out:
    """The process's buffer the packets are built in, the offsets of each and the error code."""

    def __init__(self) -> None:
        self.size = 0
        self.buffer: Any = None
        self.view: memoryview = memoryview(b"")
        self.offsets: Any = _ffi.new("int[]", MAX_PACKETS + 1) if ENABLED else None
        self.error: Any = _ffi.new("int *") if ENABLED else None

    def ensure(self, needed: int) -> None:
        if needed > self.size:
            self.size = max(needed, 2 * self.size, 256 * 1024)
            self.buffer = _ffi.new("char[]", self.size)
            self.view = memoryview(_ffi.buffer(self.buffer))


OUT = Out()


_EMPTY_RING = bytes(_ffi.sizeof("hn_sent") * RING) if _ffi is not None else b""


def new_sub() -> Any:
    """A subscriber's ``hn_sub`` (zeroed), for the timeline's C loop (bridge.native_fanout)."""
    return _ffi.new("hn_sub *")


def fill_sub(slot: Any, *, fd: int, address: bytes, session: int, payload_type: int, ssrc: int, first_byte: int,
             sequence_number: int, timestamp_origin: int, extension: bytes, abs_at: int, picture_id_delta: int,
             packets: int, octets: int) -> None:
    """A subscriber's stream state into its ``hn_sub`` (its frame ring emptied)."""
    _ffi.memmove(slot.addr, address, len(address))
    slot.fd, slot.addrlen, slot.session = fd, len(address), session
    slot.payload_type, slot.ssrc, slot.first_byte = payload_type, ssrc, first_byte
    slot.sequence_number, slot.timestamp_origin = sequence_number, timestamp_origin
    _ffi.memmove(slot.extension, extension, len(extension))
    slot.extension_length, slot.abs_at, slot.picture_id_delta = len(extension), abs_at, picture_id_delta
    slot.packets, slot.octets, slot.frames = packets, octets, 0
    _ffi.memmove(slot.ring, _EMPTY_RING, len(_EMPTY_RING))


def new_subs(count: int) -> Any:
    """An array of ``count`` pointers to ``hn_sub`` (the C loop's members)."""
    return _ffi.new("hn_sub *[]", count)


def new_int() -> Any:
    return _ffi.new("int *")


def fanout_frame(subs: Any, start: int, count: int, frame: Frame, timestamp: int, serial: int, sent: Any) -> int:
    """``frame`` to ``subs[start:count]`` (``hn_fanout_frame``): ``count`` when all took it, else the
    index of the first that did not, having sent ``sent[0]`` packets (-1: SRTP failed); its packets
    are in :data:`OUT`."""
    out = OUT
    n = frame.count
    needed = frame.octets + n * (12 + EXTENSION_MAX + 1 + SRTP_TRAILER)
    if needed > out.size:
        out.ensure(needed)
    return int(_lib.hn_fanout_frame(subs, start, count, PROTECT, frame.joined, frame.lengths, n, frame.octets,
                                    timestamp & 0xFFFFFFFF, serial & 0xFFFFFFFF, out.buffer, out.size, out.offsets,
                                    sent, out.error))


def send_rest(sent: int, count: int, sendto: Any) -> None:
    """Packets ``sent`` … ``count - 1`` of the frame last built in :data:`OUT`, through ``sendto``."""
    offsets, view = OUT.offsets, OUT.view
    for i in range(sent, count):
        sendto(bytes(view[offsets[i]:offsets[i + 1]]))


def send_frame(fd: int, addr: bytes, session: int, frame: Frame, first_byte: int, payload_type: int,
               sequence_number: int, timestamp: int, ssrc: int, extension: bytes, picture_id_delta: int,
               transport: Any, transport_addr: Any) -> None:
    """Send one subscriber's packets of ``frame`` (see module docs); raises ``OSError`` when SRTP fails."""
    out = OUT
    n = frame.count
    needed = frame.octets + n * (12 + len(extension) + 1 + SRTP_TRAILER)
    if needed > out.size:
        out.ensure(needed)
    sent = _lib.hn_send_frame(fd, addr, len(addr), session, PROTECT, frame.joined, frame.lengths, n,
                              first_byte, payload_type, sequence_number, timestamp, ssrc,
                              extension, len(extension), picture_id_delta,
                              out.buffer, out.size, out.offsets, out.error)
    if sent == n:
        return
    if sent < 0:
        raise OSError(f"hn_send_frame: srtp_protect status {out.error[0]}")
    offsets, view = out.offsets, out.view
    for i in range(sent, n):  # the socket is full (or refused): the rest in order through the transport
        transport.sendto(bytes(view[offsets[i]:offsets[i + 1]]), transport_addr)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    try:
        print(f"built {build()}")
    except Exception as exc:  # no compiler here: the bridge runs on the Python path
        print(f"bridge/_rtp_send not built ({exc}): the relay sends from Python", file=sys.stderr)
