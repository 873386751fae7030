"""A subscriber's RTCP handled where its datagram arrives, without the event loop's hops.

aiortc takes every datagram of a peer connection through aioice's ``StunProtocol.datagram_received``
(a STUN parse attempt first), ``Connection.data_received`` (an ``asyncio.Queue``), the task of the
DTLS transport awaiting ``recvfrom`` (a wakeup per datagram), ``RTCDtlsTransport._recv_next``
(SRTCP unprotect, ``RtcpPacket.parse``, ``RtpRouter.route_rtcp``) and the recipients'
``_handle_rtcp_packet`` coroutines. A relay subscriber sends nothing but RTCP (receiver reports,
REMB about once a second or more, NACKs, PLIs), and per packet the hops cost far more than the work.

:func:`handle_rtcp_directly` wraps ``datagram_received`` of the nominated UDP pair's protocol: an
SRTCP datagram (RFC 5761 demultiplexing, as aiortc's ``is_rtcp``) arriving while the DTLS
transport is connected is unprotected with its receive session, parsed and routed as aiortc's own
router does (its tables) to aiortc's own handlers (with the bridge's hooks on them: adaptation feedback, NACKs to
:class:`bridge.direct_send.DirectSender`, PLIs) — at once. A handler coroutine is run to its end
synchronously (the ones for RR, SR, SDES, REMB, NACK and PLI never really wait); one that does
wait goes on as a task. Everything else (STUN, DTLS, RTP) takes aiortc's path as before, and a
connection this cannot hook (TURN, or aiortc internals not as named in :mod:`bridge.aiortc_compat`)
keeps aiortc's path for everything.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Generator
from typing import Any

import pylibsrtp
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    unpack_remb_fci,
)

from bridge import aiortc_compat as compat

log = logging.getLogger("hoinghi.bridge.rtcp_fast")

FAST_ATTR = "_hoinghi_fast_rtcp"  # on the DTLS transport: its FastRtcp
ENABLED = True  # False: every peer connection keeps aiortc's own path (tests, comparisons)
_is_rtcp: Callable[[bytes], bool] = getattr(*compat.RTCP_IS)
_parse: Callable[[bytes], list[Any]] = getattr(*compat.RTCP_PARSE)
_RX_BYTES, _RX_PACKETS = compat.DTLS_RX_COUNTERS


class _Resumed:
    """Awaiting it continues a coroutine that has already run up to its first real wait (which it
    yielded: ``awaited``), as ``await`` would have from the start."""

    def __init__(self, coro: Coroutine[Any, Any, Any], awaited: Any) -> None:
        self.coro = coro
        self.awaited = awaited

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, awaited = self.coro, self.awaited
        while True:
            try:
                value = yield awaited
            except BaseException as exc:  # cancelled (or thrown into) while waiting: pass it on
                try:
                    awaited = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    awaited = coro.send(value)
                except StopIteration as stop:
                    return stop.value


async def _finish(coro: Coroutine[Any, Any, Any], awaited: Any) -> None:
    try:
        await _Resumed(coro, awaited)
    except Exception:
        log.exception("RTCP handler failed")


def run_now(coro: Coroutine[Any, Any, Any]) -> bool:
    """Run ``coro`` synchronously as far as it goes; if it waits, the rest runs as a task.
    True when it ended here."""
    try:
        awaited = coro.send(None)
    except StopIteration:
        return True
    except Exception:
        log.exception("RTCP handler failed")
        return True
    asyncio.get_running_loop().create_task(_finish(coro, awaited))
    return False


class FastRtcp:
    """The SRTCP datagrams of one DTLS transport's nominated UDP pair, handled on arrival."""

    def __init__(self, dtls: Any, protocol: Any) -> None:
        self.dtls = dtls
        self.protocol = protocol
        self.original: Callable[[bytes, Any], None] = getattr(protocol, compat.ICE_DATAGRAM_METHOD)
        self.router = getattr(dtls, compat.DTLS_ROUTER_ATTR)
        receivers, senders = (getattr(self.router, name) for name in compat.ROUTER_TABLES)
        self.receiver_for, self.sender_for = receivers.get, senders.get
        self._connected = getattr(*compat.DTLS_CONNECTED).CONNECTED
        self.packets = 0  # RTCP datagrams handled here
        self.waited = 0  # handler coroutines that had to go on as tasks

    def datagram_received(self, data: bytes, addr: Any) -> None:
        dtls = self.dtls
        if not (data and 127 < data[0] < 192 and _is_rtcp(data)) \
                or getattr(dtls, compat.DTLS_STATE_ATTR) is not self._connected:
            self.original(data, addr)  # STUN, DTLS, RTP; or not connected (any more): aiortc's path
            return
        setattr(dtls, _RX_BYTES, getattr(dtls, _RX_BYTES) + len(data))
        setattr(dtls, _RX_PACKETS, getattr(dtls, _RX_PACKETS) + 1)
        try:
            packets = _parse(getattr(dtls, compat.DTLS_RX_SRTP_ATTR).unprotect_rtcp(data))
        except (pylibsrtp.Error, ValueError):
            return  # as aiortc: a datagram that fails authentication or parsing is dropped
        self.packets += 1
        for packet in packets:
            for recipient in self.recipients(packet):
                if not run_now(getattr(recipient, compat.SENDER_RTCP_METHOD)(packet)):
                    self.waited += 1

    def recipients(self, packet: Any) -> list[Any]:
        """Whom ``packet`` concerns: what aiortc's ``RtpRouter.route_rtcp`` returns (the same
        lookups in the same tables), without building its typing annotations at each call."""
        kind = type(packet)
        found: list[Any] = []
        if kind is RtcpSrPacket:
            found.append(self.receiver_for(packet.ssrc))
        elif kind is RtcpByePacket:
            found.extend(map(self.receiver_for, packet.sources))
        if kind is RtcpRrPacket or kind is RtcpSrPacket:
            found.extend(self.sender_for(report.ssrc) for report in packet.reports)
        elif kind is RtcpPsfbPacket or kind is RtcpRtpfbPacket:
            found.append(self.sender_for(packet.media_ssrc))
            if kind is RtcpPsfbPacket and packet.fmt == RTCP_PSFB_APP:  # REMB: the SSRCs are in the FCI
                try:
                    found.extend(map(self.sender_for, unpack_remb_fci(packet.fci)[1]))
                except ValueError:
                    pass
        if len(found) == 1:
            return found if found[0] is not None else []
        return [r for i, r in enumerate(found) if r is not None and r not in found[:i]]


def handle_rtcp_directly(dtls: Any) -> FastRtcp | None:
    """Handle the SRTCP datagrams of ``dtls`` (connected, its ICE pair nominated) on arrival (see
    module docs); idempotent. None: left to aiortc's own path (not a plain UDP pair, or aiortc's
    internals are not the ones named)."""
    fast: FastRtcp | None = getattr(dtls, FAST_ATTR, None)
    if fast is not None or not ENABLED:
        return fast
    try:
        pair = getattr(getattr(dtls.transport, compat.ICE_CONNECTION_ATTR), compat.ICE_NOMINATED_ATTR).get(1)
        if pair is None or type(pair.protocol) is not getattr(*compat.ICE_UDP_PROTOCOL) \
                or getattr(dtls, compat.DTLS_RX_SRTP_ATTR) is None:
            return None
        for name in (compat.DTLS_ROUTER_ATTR, *compat.DTLS_RX_COUNTERS, compat.DTLS_STATE_ATTR):
            getattr(dtls, name)
        fast = FastRtcp(dtls, pair.protocol)
    except AttributeError:
        log.warning("aiortc's internals differ: subscribers' RTCP takes aiortc's own path", exc_info=True)
        return None
    setattr(pair.protocol, compat.ICE_DATAGRAM_METHOD, fast.datagram_received)
    setattr(dtls, FAST_ATTR, fast)
    return fast


def fast_rtcp(dtls: Any) -> FastRtcp | None:
    """The :class:`FastRtcp` handling ``dtls``'s RTCP (None: aiortc's path)."""
    return getattr(dtls, FAST_ATTR, None)
