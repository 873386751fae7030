"""The relay's send path in C (bridge/native/rtp_send.c through bridge.native_send): the packets
a subscriber gets from it are, once SRTP is taken off by the subscriber's own session, exactly
the RTP packets the format says (header, marker on a frame's last packet, the sender's extension
block, the payload with its VP8 picture id moved after a rendition switch); what the socket does
not take goes through the asyncio transport, in order. The end-to-end tests of the direct send
path (test_aiortc_compat, test_relay_direct, test_renditions) run on it wherever it is built."""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pylibsrtp import Policy, Session

from bridge import native_send
from bridge.keyframes import vp8_picture_id, with_picture_id_delta
from tests.conftest import need_service

KEY = bytes(range(44))  # AES-256-GCM: 32-byte key, 12-byte salt (the profile aiortc peers agree on)
SSRC = 0x1234ABCD
EXTENSION = struct.pack("!HH", 0xBEDE, 1) + bytes((0x10, 0x07, 0x00, 0x00))


@pytest.fixture
def built() -> None:
    if not native_send.ENABLED:
        need_service(native_send.WHY_NOT)


def _sessions() -> tuple[Session, Session]:
    outbound = Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=Policy.SRTP_PROFILE_AEAD_AES_256_GCM)
    inbound = Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_INBOUND, srtp_profile=Policy.SRTP_PROFILE_AEAD_AES_256_GCM)
    return Session(policy=outbound), Session(policy=inbound)


@pytest.fixture
def link() -> Iterator[tuple[socket.socket, socket.socket]]:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(2)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.setblocking(False)
    try:
        yield sender, receiver
    finally:
        sender.close()
        receiver.close()


def _vp8(picture_id: int | None, body: bytes, long_id: bool = True) -> bytes:
    """A VP8 payload descriptor (RFC 7741) with or without a picture id, then ``body``."""
    if picture_id is None:
        return bytes((0x10,)) + body
    if long_id:
        return bytes((0x90, 0x80, 0x80 | picture_id >> 8, picture_id & 0xFF)) + body
    return bytes((0x90, 0x80, picture_id & 0x7F)) + body


def _expected(payloads: list[bytes], seq: int, timestamp: int, extension: bytes, delta: int) -> list[bytes]:
    first = 0x90 if extension else 0x80
    out = []
    for i, payload in enumerate(payloads):
        marker = 0x80 if i == len(payloads) - 1 else 0
        header = struct.pack("!BBHLL", first, 96 | marker, (seq + i) & 0xFFFF, timestamp, SSRC)
        out.append(header + extension + (with_picture_id_delta(payload, delta) if delta else payload))
    return out


class Transport:
    """Stands for the asyncio transport (only its ``sendto`` is called): what it was handed, in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def sendto(self, data: bytes, addr: Any) -> None:
        self.sent.append((data, addr))


FRAMES = [
    # (payloads, extension, picture id delta)
    ([_vp8(300, os.urandom(1100)), _vp8(None, os.urandom(1100)), _vp8(None, os.urandom(17))], EXTENSION, 0),
    ([_vp8(32767, os.urandom(900)), _vp8(None, os.urandom(5))], EXTENSION, 5),  # the id wraps
    ([_vp8(100, os.urandom(700), long_id=False)], b"", 40),  # a 7-bit id is written in the 15-bit form
    ([_vp8(9, os.urandom(50))], EXTENSION, -20),
    ([os.urandom(1200) for _ in range(40)], EXTENSION, 0),  # a keyframe's worth of packets (H.264 / Opus: no id)
]


@pytest.mark.parametrize("payloads,extension,delta", FRAMES)
def test_a_subscriber_gets_the_packets_the_format_says(built: None, link: tuple[socket.socket, socket.socket],
                                                       payloads: list[bytes], extension: bytes, delta: int) -> None:
    sender, receiver = link
    outbound, inbound = _sessions()
    seq, timestamp = 65530, 0xFFFFFF00  # the sequence number wraps within the frame
    address = native_send.sockaddr(socket.AF_INET, receiver.getsockname())
    assert address is not None
    transport = Transport()
    native_send.send_frame(sender.fileno(), address, native_send.session_address(outbound),
                           native_send.Frame(payloads), 0x90 if extension else 0x80, 96, seq, timestamp, SSRC,
                           extension, delta, transport, receiver.getsockname())
    assert transport.sent == [], "a socket with room took every datagram itself"
    got = [inbound.unprotect(receiver.recv(2048)) for _ in payloads]
    assert got == _expected(payloads, seq, timestamp, extension, delta)
    if delta and payloads[0][:1] == b"\x90":
        assert vp8_picture_id(got[0][12 + len(extension):]) == (vp8_picture_id(payloads[0]) + delta) % 32768  # type: ignore[operator]


def test_what_the_socket_does_not_take_goes_through_the_transport_in_order(built: None) -> None:
    """A socket that refuses the datagrams (here: a descriptor that is not open) leaves them to the
    asyncio transport, protected, in order, nothing lost or doubled."""
    outbound, inbound = _sessions()
    payloads = [_vp8(7, os.urandom(1000)), _vp8(None, os.urandom(1000)), _vp8(None, os.urandom(10))]
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    fd = closed.fileno()
    closed.close()
    address = native_send.sockaddr(socket.AF_INET, ("127.0.0.1", 9))
    assert address is not None
    transport = Transport()
    native_send.send_frame(fd, address, native_send.session_address(outbound), native_send.Frame(payloads),
                           0x90, 96, 10, 1000, SSRC, EXTENSION, 0, transport, ("127.0.0.1", 9))
    assert [addr for _, addr in transport.sent] == [("127.0.0.1", 9)] * 3
    assert [inbound.unprotect(data) for data, _ in transport.sent] == _expected(payloads, 10, 1000, EXTENSION, 0)


def test_addresses_are_built_for_both_families() -> None:
    v4 = native_send.sockaddr(socket.AF_INET, ("10.1.2.3", 5004))
    assert v4 == struct.pack("=H", socket.AF_INET) + bytes((0x13, 0x8C, 10, 1, 2, 3)) + bytes(8)
    v6 = native_send.sockaddr(socket.AF_INET6, ("fe80::1", 5004, 0, 3))
    assert v6 is not None and len(v6) == 28 and v6[2:4] == b"\x13\x8c" and v6[-4:] == struct.pack("=I", 3)
    assert native_send.sockaddr(socket.AF_INET, ("not an address", 1)) is None
    assert native_send.sockaddr(socket.AF_UNIX, "/tmp/x") is None


def _sub(slot: Any, fd: int, address: bytes, session: Session, seq: int, origin: int, extension: bytes,
         abs_at: int, delta: int) -> None:
    native_send.fill_sub(slot, fd=fd, address=address, session=native_send.session_address(session),
                         payload_type=96, ssrc=SSRC, first_byte=0x90 if extension else 0x80, sequence_number=seq,
                         timestamp_origin=origin, extension=extension, abs_at=abs_at, picture_id_delta=delta,
                         packets=7, octets=700)


def test_the_c_loop_sends_each_subscriber_its_own_stream_and_remembers_it(built: None) -> None:
    """hn_fanout_frame: one frame to three subscribers in one call — each gets the packets its own
    state says (sequence numbers, timestamp origin, picture id moved or not, its extension block
    with the 3 bytes of abs-send-time set to now), its state advances, the frame is in its ring
    (what a NACK is answered from), and a subscriber whose socket refuses the frame stops the loop
    there with its packets left for the transport; the next call goes on after it."""
    receivers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead_fd = closed.fileno()
    closed.close()
    try:
        for receiver in receivers:
            receiver.bind(("127.0.0.1", 0))
            receiver.settimeout(2)
        sessions = [_sessions() for _ in receivers]
        payloads = [_vp8(300, os.urandom(1100)), _vp8(None, os.urandom(1100)), _vp8(None, os.urandom(17))]
        frame = native_send.Frame(payloads)
        subs, slots = native_send.new_subs(3), [native_send.new_sub() for _ in receivers]
        absolute = struct.pack("!HH", 0xBEDE, 1) + bytes((0x22, 0, 0, 0))  # abs-send-time (id 2) at byte 5
        states = [(65534, 1000, absolute, 5, 0), (100, 0xFFFFFFF0, absolute, 5, 9), (5000, 7, EXTENSION, -1, 0)]
        for i, (slot, receiver, (outbound, _), state) in enumerate(
                zip(slots, receivers, sessions, states, strict=True)):
            address = native_send.sockaddr(socket.AF_INET, receiver.getsockname())
            assert address is not None
            _sub(slot, dead_fd if i == 1 else sender.fileno(), address, outbound, *state)
            subs[i] = slot
        sent = native_send.new_int()
        stopped = native_send.fanout_frame(subs, 0, 3, frame, 90_000, 41, sent)
        assert stopped == 1 and sent[0] == 0, "the second subscriber's socket took nothing"
        refused = Transport()
        native_send.send_rest(sent[0], frame.count, lambda data: refused.sendto(data, None))
        assert native_send.fanout_frame(subs, 2, 3, frame, 90_000, 41, sent) == 3
        now_abs = int((time.time() + 2208988800) * (1 << 18)) & 0xFFFFFF  # NTP time >> 14, as the extension has it
        for i, (slot, receiver, (_, inbound), (seq, origin, extension, abs_at, delta)) in enumerate(
                zip(slots, receivers, sessions, states, strict=True)):
            got = [inbound.unprotect(data) for data, _ in refused.sent] if i == 1 else \
                [inbound.unprotect(receiver.recv(2048)) for _ in payloads]
            timestamp = (origin + 90_000) & 0xFFFFFFFF
            if abs_at >= 0:  # the time bytes are this subscriber's send time
                sent_abs = int.from_bytes(got[0][12 + abs_at:15 + abs_at], "big")
                assert abs(sent_abs - now_abs) < 1 << 16, "abs-send-time within 0.25 s of now"
                extension = extension[:abs_at] + sent_abs.to_bytes(3, "big") + extension[abs_at + 3:]
            assert got == _expected(payloads, seq, timestamp, extension, delta)
            assert slot.sequence_number == (seq + 3) & 0xFFFF and slot.packets == 10 and slot.frames == 1
            assert slot.octets == 700 + frame.octets and slot.last_timestamp == timestamp
            record = slot.ring[1]
            assert (record.frame, record.serial, record.sequence_number, record.count, record.timestamp) == \
                (1, 41, seq, 3, timestamp)
    finally:
        sender.close()
        for receiver in receivers:
            receiver.close()
