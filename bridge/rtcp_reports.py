"""The direct senders' RTCP sender reports, from one timer for all instead of a task per sender.

aiortc's ``RTCRtpSender._run_rtcp`` is a task per sender that sleeps 0.5–1.5 s (RFC 3550's
randomized interval), builds an SR and an SDES out of dataclasses and awaits the DTLS transport's
send: a relay with hundreds of subscribers (three senders each, video and two audio timelines)
wakes a task hundreds of times a second for it. For a sender given :func:`use_shared_reports`
(the direct senders, bridge.direct_send) ``_run_rtcp`` is replaced: the task only waits for the
sender to stop, or its transport to close (then sends aiortc's BYE as aiortc does), and :class:`Reports` — one per event
loop — sends every due report from one timer callback, the SR packed with ``struct`` (the same
bytes as aiortc's ``RtcpSrPacket``; the SDES, constant, made once by aiortc's own class), through
aiortc's own ``RTCDtlsTransport._send_rtp`` (its counters stay right). It notes the report as
aiortc does (``__lsr``, ``__lsr_time``: the round trip from receiver reports). A sender that sent
nothing since its last report (an audio timeline nobody speaks on) reports only every
:data:`SILENT_EVERY` intervals (RFC 3550 §6.4: an SR is for a participant that sent).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import random
import struct
import time
from typing import Any

from aiortc import RTCRtpSender
from aiortc.rtp import RtcpByePacket, RtcpSdesPacket, RtcpSourceInfo

from bridge import aiortc_compat as compat
from bridge.rtcp_fast import run_now

log = logging.getLogger("hoinghi.bridge.rtcp_reports")

SILENT_EVERY = 5  # a sender that sent nothing reports every 5th interval (~5 s) all the same
TICK = 0.05  # reports due within this of each other leave from one timer callback
_SR_HEAD = struct.Struct("!BBHL")  # V=2, RC=0 | PT=200 (SR) | length 6 words | SSRC
_SENDER_INFO = struct.Struct("!QLLL")  # NTP time | RTP time | packet count | octet count
_ORDER = itertools.count()
REPORTER_ATTR = "_hoinghi_reporter"


SYNC_ATTR = "_hoinghi_sync_counters"  # bridge.direct_send.SYNC_ATTR (that module imports this one)


def _state(sender: RTCRtpSender, name: str) -> Any:
    return getattr(sender, compat.SENDER_PRIVATE + name)


class Reporter:
    """One sender's reports: ``reports`` sent (and ``skipped``: it had sent nothing since the last)."""

    def __init__(self, sender: RTCRtpSender) -> None:
        self.sender = sender
        self.ssrc: int = getattr(sender, compat.SENDER_SSRC)
        cname = _state(sender, "cname")
        self.sdes = bytes(RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=self.ssrc, items=[(1, cname.encode("utf8"))])])) \
            if cname is not None else b""
        self.last_count = -1
        self.silent = 0
        self.stopped = False
        self.reports = self.skipped = 0
        # Resolved when the sender's transport has closed: its task ends even if aiortc never
        # stops the sender (a peer connection whose close was cut short)
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def transport_gone(self) -> bool:
        state = getattr(self.sender.transport, "state", None)
        if state in ("closed", "failed"):
            if not self.ended.done():
                self.ended.set_result(None)
            return True
        return False

    def report(self) -> None:
        sender = self.sender
        sync = getattr(sender, SYNC_ATTR, None)  # a direct sender whose counters may be in the C loop
        if sync is not None:
            sync()
        count = _state(sender, "packet_count")
        if count == self.last_count and self.silent < SILENT_EVERY - 1:
            self.silent += 1
            self.skipped += 1
            return
        self.last_count, self.silent = count, 0
        ntp = _state(sender, "ntp_timestamp")
        payload = sender_report(self.ssrc, ntp, _state(sender, "rtp_timestamp"), count,
                                _state(sender, "octet_count")) + self.sdes
        setattr(sender, compat.SENDER_PRIVATE + "lsr", (ntp >> 16) & 0xFFFFFFFF)
        setattr(sender, compat.SENDER_PRIVATE + "lsr_time", time.time())
        run_now(_send(sender, payload))
        self.reports += 1


async def _send(sender: RTCRtpSender, payload: bytes) -> None:
    try:
        await getattr(sender.transport, compat.DTLS_SEND_RTP)(payload)
    except ConnectionError:
        pass


class Reports:
    """Every shared-report sender of one event loop, each on its own randomized interval."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._due: list[tuple[float, int, Reporter]] = []
        self._timer: asyncio.TimerHandle | None = None
        self.sent = 0  # report callbacks run (skipped silent ones included)

    def add(self, reporter: Reporter) -> None:
        self._schedule(reporter, self.loop.time())
        self._arm()

    def _schedule(self, reporter: Reporter, now: float) -> None:
        heapq.heappush(self._due, (now + 0.5 + random.random(), next(_ORDER), reporter))  # aiortc's interval

    def _arm(self) -> None:
        """The timer at the earliest report due."""
        if not self._due:
            return
        at = self._due[0][0]
        if self._timer is not None:
            if self._timer.when() <= at:
                return
            self._timer.cancel()
        self._timer = self.loop.call_at(at, self._tick)

    def _tick(self) -> None:
        self._timer = None
        now = self.loop.time()
        due = self._due
        while due and due[0][0] <= now + TICK:
            _, _, reporter = heapq.heappop(due)
            if reporter.stopped or reporter.transport_gone():
                continue
            try:
                reporter.report()
                self.sent += 1
            except Exception:
                log.exception("sender report failed")
            self._schedule(reporter, now)
        self._arm()


_reports: dict[asyncio.AbstractEventLoop, Reports] = {}


def reports() -> Reports:
    """The :class:`Reports` of the running loop."""
    loop = asyncio.get_running_loop()
    found = _reports.get(loop)
    if found is None or found.loop.is_closed():
        for old in [k for k in _reports if k.is_closed()]:
            del _reports[old]
        found = _reports[loop] = Reports(loop)
    return found


def reporter(sender: RTCRtpSender) -> Reporter | None:
    """The :class:`Reporter` of ``sender`` (None: not started, or aiortc's own reports)."""
    return getattr(sender, REPORTER_ATTR, None)


def sender_report(ssrc: int, ntp: int, rtp_timestamp: int, packets: int, octets: int) -> bytes:
    """An RTCP SR without report blocks, as aiortc's ``RtcpSrPacket`` serializes it."""
    return _SR_HEAD.pack(0x80, 200, 6, ssrc) + _SENDER_INFO.pack(ntp, rtp_timestamp, packets & 0xFFFFFFFF,
                                                                  octets & 0xFFFFFFFF)


def use_shared_reports(sender: RTCRtpSender) -> None:
    """Have ``sender`` report through :func:`reports` once it starts (call it before it does)."""
    async def run_rtcp() -> None:
        _state(sender, "rtcp_started").set()
        reporter = Reporter(sender)
        setattr(sender, REPORTER_ATTR, reporter)
        reports().add(reporter)
        transport = sender.transport
        on = getattr(transport, "on", None)  # aiortc's transports emit "statechange"
        if on is not None:
            on("statechange", reporter.transport_gone)
        try:
            await reporter.ended  # until the sender stops (cancelled) or its transport closed
        except asyncio.CancelledError:
            pass
        finally:
            reporter.stopped = True
            if on is not None:
                try:
                    transport.remove_listener("statechange", reporter.transport_gone)
                except (KeyError, ValueError):
                    pass
        try:  # as aiortc: a BYE at the end
            await getattr(sender.transport, compat.DTLS_SEND_RTP)(bytes(RtcpByePacket(sources=[reporter.ssrc])))
        except ConnectionError:
            pass
        finally:
            _state(sender, "rtcp_exited").set()  # RTCRtpSender.stop() waits for it

    setattr(sender, compat.SENDER_RUN_RTCP, run_rtcp)
