"""The websocket hub: connections, subscriptions, and fan-out of bus events.

Each socket has an outbox — a bounded queue and one writer task — and the connection sends
through it without ever seeing the socket: a client that cannot keep up is disconnected, never
buffered without end. A subscription is registered *before* its snapshot is read and buffers
events until the snapshot is sent, then forwards only events newer than the snapshot — so a
client gets snapshot then events with no gap and no duplicate. Frames arrive from the bus
already serialised and are forwarded byte for byte.

What the bus lost cannot be forwarded: when the bus subscription comes back after a drop
(``on_resumed``), or a meeting's seqs skip ahead and stay so (server.live.gaps), the subscriptions
concerned are handed to ``resync`` (server.live.resync: a fresh snapshot each, read once per topic).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import WSCloseCode, WSMsgType

from server.live.dedup import Latest
from server.live.gaps import SeqGaps
from server.live.revocation import CLOSE_REVOKED, Revocation
from server.live.wire import BROADCAST, UNORDERED, Routed, decode, dumps
from sessions.roles import Principal

log = logging.getLogger("hoinghi.hub")

CLOSE_SLOW = 4008
CLOSE_ABUSE = 4029


class TokenBucket:
    """Actions per connection: ``rate`` per second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst, self.tokens, self.at = rate, burst, burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Socket(Protocol):
    """What an outbox writes to: an aiohttp ``WebSocketResponse`` (or a test's stand-in)."""

    @property
    def closed(self) -> bool: ...

    async def send_frame(self, frame: bytes, opcode: WSMsgType, /) -> None: ...

    async def close(self, *, code: int = ..., message: bytes = ...) -> object: ...


class Outbox:
    """One socket's bounded outbound queue and the task that writes it out. A client that falls
    ``size`` frames behind is closed with 4008 (it reconnects and gets a fresh snapshot), never
    buffered without end."""

    def __init__(self, ws: Socket, size: int, name: str = "ws") -> None:
        self.ws, self.name = ws, name
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(size)
        self.writer: asyncio.Task[None] | None = None
        self.closing: asyncio.Task[Any] | None = None  # the close of a slow client (4008) or a revoked one
        self.dropped = False

    def start(self) -> None:
        self.writer = asyncio.create_task(self._write(), name=f"ws-writer-{self.name}")

    def send(self, frame: bytes) -> None:
        if self.dropped:
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.dropped = True
            log.warning("slow websocket client dropped", extra={"who": self.name})
            self.closing = asyncio.get_running_loop().create_task(
                self.ws.close(code=CLOSE_SLOW, message="Kết nối quá chậm, đang tải lại".encode()))

    async def _write(self) -> None:
        while True:
            frame = await self.queue.get()
            if frame is None or self.ws.closed:
                return
            try:
                await self.ws.send_frame(frame, WSMsgType.TEXT)
            except (ConnectionError, RuntimeError):
                return

    async def close(self, code: int, message: bytes) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, message=message)

    def end(self, code: int, message: bytes) -> None:
        """Close the socket without waiting for its closing handshake; nothing more is sent."""
        if self.dropped:
            return
        self.dropped = True
        self.closing = asyncio.get_running_loop().create_task(self.close(code, message))

    async def stop(self) -> None:
        """End the writer. A 4008 close under way is left to finish its handshake (aiohttp bounds
        it); it is kept in ``closing`` only so that it cannot be garbage-collected mid-way."""
        if self.writer is not None:
            self.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.writer


@dataclass(eq=False)
class Connection:
    """One client of the websocket: who it is, what it follows, which sites it joined, its action
    budget and strikes. It never sees the socket: frames leave through ``send`` (an outbox's
    bounded queue in the server, a list in a test)."""

    send: Callable[[bytes], None]
    principal: Principal
    ip: str = ""
    login: str = ""  # the stored login session a cookie socket rides (server.live.revocation)
    subs: dict[str, Subscription] = field(default_factory=dict)
    joined: set[tuple[int, int]] = field(default_factory=set)  # (meeting id, unit id)
    actions: TokenBucket = field(default_factory=lambda: TokenBucket(5.0, 10.0))
    strikes: int = 0
    recorded: bool = False  # a bridge that reported a recording here: its end interrupts what it records

    def send_obj(self, obj: dict[str, Any]) -> None:
        self.send(dumps(obj))


@dataclass(eq=False)
class Subscription:
    conn: Connection
    topic: str
    meeting_id: int
    kind: str  # "meeting" | "rollcall" | "kpi" | "directives" (meeting_id 0 for the last two: any meeting)
    unit_id: int  # own unit (meeting), the subtree root (rollcall, directives) or the slide's unit (kpi)
    snapshot_seq: int = -1
    buffer: list[Routed] | None = field(default_factory=list)

    def wants(self, r: Routed) -> bool:
        if r.kind in BROADCAST:
            return True
        if self.kind == "meeting":
            return r.unit_id == self.unit_id
        return self.unit_id in r.path

    def deliver(self, r: Routed) -> None:
        if self.buffer is not None:
            self.buffer.append(r)
        elif r.newer_than(self.snapshot_seq):
            self.conn.send(r.frame)

    def snapshot_sent(self, seq: int) -> None:
        """Called right after the snapshot frame is queued: flush what arrived meanwhile."""
        self.snapshot_seq = seq
        pending, self.buffer = self.buffer or [], None
        for r in pending:
            if r.newer_than(seq):
                self.conn.send(r.frame)


@dataclass(eq=False)
class MeetingSubs:
    """The subscriptions of one meeting, indexed so that a seat event touches only the sites it
    concerns: ``meeting:`` subscriptions by their own unit, ``rollcall:`` ones (few) scanned."""

    all: set[Subscription] = field(default_factory=set)
    by_unit: dict[int, set[Subscription]] = field(default_factory=dict)
    rollcall: set[Subscription] = field(default_factory=set)

    def add(self, sub: Subscription) -> None:
        self.all.add(sub)
        if sub.kind == "meeting":
            self.by_unit.setdefault(sub.unit_id, set()).add(sub)
        else:
            self.rollcall.add(sub)

    def discard(self, sub: Subscription) -> None:
        self.all.discard(sub)
        if sub.kind == "meeting":
            same = self.by_unit.get(sub.unit_id)
            if same is not None:
                same.discard(sub)
                if not same:
                    del self.by_unit[sub.unit_id]
        else:
            self.rollcall.discard(sub)

    def matching(self, r: Routed) -> list[Subscription]:
        if r.kind in BROADCAST:
            return list(self.all)
        subs = [s for s in self.rollcall if s.wants(r)]
        if r.unit_id is not None:
            subs += self.by_unit.get(r.unit_id, ())
        return subs


class Hub:
    def __init__(self, queue_size: int = 1024) -> None:
        self.queue_size = queue_size
        self.by_meeting: dict[int, MeetingSubs] = {}
        self.by_slide: dict[int, set[Subscription]] = {}  # kpi: subscriptions by unit id
        self.by_dashboard: dict[int, set[Subscription]] = {}  # directives: subscriptions by subtree root
        self.connections: dict[Connection, Outbox] = {}  # each connection's outbox, to close at shutdown
        self.delivered = 0
        self.gaps = SeqGaps()
        self.latest = Latest()
        self._gap_checks: dict[int, asyncio.TimerHandle] = {}
        # Subscriptions whose client must get a fresh snapshot (set by the app: server.live.resync).
        self.resync: Callable[[Iterable[Subscription]], None] = lambda subs: None

    async def on_bus(self, topic: str, message: bytes) -> None:
        r = decode(message)
        subs = self.by_meeting.get(r.meeting_id)
        if subs is None:
            return
        if r.kind not in UNORDERED and self.gaps.seen(r.meeting_id, r.seq, time.monotonic()):
            self._check_gap_later(r.meeting_id, self.gaps.grace)
        if not self.latest.fresh(r):  # a late or repeated event (the outbox): the clients have newer
            return
        matching = subs.matching(r)
        for sub in matching:
            sub.deliver(r)
        self.delivered += len(matching)

    async def on_kpi(self, topic: str, message: bytes) -> None:
        """``kpi.<unit id>``: a unit's whole slide, to the ``kpi:`` subscriptions of that unit."""
        r = decode(message)
        matching = list(self.by_slide.get(r.unit_id, ())) if r.unit_id is not None else []
        for sub in matching:
            sub.deliver(r)
        self.delivered += len(matching)

    async def on_directives(self, topic: str, message: bytes) -> None:
        """``directives.changed``: counts moved under the units of the path (empty path: anywhere);
        every ``directives:`` subscription rooted on one of them is told to refresh."""
        r = decode(message)
        if r.path:
            matching = {s for uid in r.path for s in self.by_dashboard.get(uid, ())}
        else:
            matching = {s for subs in self.by_dashboard.values() for s in subs}
        for sub in matching:
            sub.deliver(r)
        self.delivered += len(matching)

    async def on_resumed(self, topic: str, message: bytes) -> None:
        """The bus subscription is back after a drop (server.live.bus.RESUMED): whatever it carried
        meanwhile is lost, so every subscription of this process gets a fresh snapshot."""
        for meeting in list(self.gaps.streams):
            self.gaps.restart(meeting)
        subs = [sub for conn in self.connections for sub in conn.subs.values()]
        log.info("bus resumed: resyncing subscriptions", extra={"subscriptions": len(subs)})
        self.resync(subs)

    def snapshot_sent(self, sub: Subscription, seq: int) -> None:
        """``sub``'s snapshot (read at ``seq``) was queued: flush what it held back; the first
        snapshot of a meeting here is where the meeting's gap check starts."""
        sub.snapshot_sent(seq)
        if sub.kind in ("meeting", "rollcall"):
            self.based(sub.meeting_id, seq)

    def based(self, meeting: int, seq: int) -> None:
        if self.gaps.base(meeting, seq, time.monotonic()):
            self._check_gap_later(meeting, self.gaps.grace)

    def _check_gap_later(self, meeting: int, delay: float) -> None:
        if meeting not in self._gap_checks:
            self._gap_checks[meeting] = asyncio.get_running_loop().call_later(delay, self._gap_due, meeting)

    def _gap_due(self, meeting: int) -> None:
        """A gap opened ``grace`` ago: if it is still open, an event was lost — resync the meeting."""
        self._gap_checks.pop(meeting, None)
        since = self.gaps.open_since(meeting)
        subs = self.by_meeting.get(meeting)
        if since is None or subs is None:
            return
        waited = time.monotonic() - since
        if waited < self.gaps.grace:  # the gap closed and another one opened since
            self._check_gap_later(meeting, self.gaps.grace - waited)
            return
        log.warning("events of a meeting lost (its seq skipped ahead): resyncing its subscriptions",
                    extra={"meeting": meeting, "subscriptions": len(subs.all)})
        self.gaps.restart(meeting)
        self.resync(list(subs.all))

    def _unit_index(self, kind: str) -> dict[int, set[Subscription]] | None:
        return self.by_slide if kind == "kpi" else self.by_dashboard if kind == "directives" else None

    def add(self, sub: Subscription) -> None:
        old = sub.conn.subs.pop(sub.topic, None)
        if old is not None:
            self.remove(old)
        sub.conn.subs[sub.topic] = sub
        index = self._unit_index(sub.kind)
        if index is not None:
            index.setdefault(sub.unit_id, set()).add(sub)
        else:
            if sub.meeting_id not in self.by_meeting:
                self.gaps.watch(sub.meeting_id)
            self.by_meeting.setdefault(sub.meeting_id, MeetingSubs()).add(sub)

    def remove(self, sub: Subscription) -> None:
        index = self._unit_index(sub.kind)
        if index is not None:
            same = index.get(sub.unit_id)
            if same is not None:
                same.discard(sub)
                if not same:
                    del index[sub.unit_id]
        subs = self.by_meeting.get(sub.meeting_id) if index is None else None
        if subs is not None:
            subs.discard(sub)
            if not subs.all:
                del self.by_meeting[sub.meeting_id]
                self.gaps.forget(sub.meeting_id)
                self.latest.forget(sub.meeting_id)
                check = self._gap_checks.pop(sub.meeting_id, None)
                if check is not None:
                    check.cancel()
        if sub.conn.subs.get(sub.topic) is sub:
            del sub.conn.subs[sub.topic]

    def connect(self, conn: Connection, outbox: Outbox) -> None:
        self.connections[conn] = outbox
        outbox.start()

    async def disconnect(self, conn: Connection) -> None:
        for sub in list(conn.subs.values()):
            self.remove(sub)
        outbox = self.connections.pop(conn, None)
        if outbox is not None:
            await outbox.stop()

    async def on_revoked(self, topic: str, message: bytes) -> None:
        """``auth.revoked``: close the sockets of a credential that ended (server.live.revocation)."""
        revocation = Revocation.decode(message)
        ended = [(conn, outbox) for conn, outbox in self.connections.items()
                 if revocation.ends(conn.principal, conn.login)]
        for _conn, outbox in ended:
            outbox.end(CLOSE_REVOKED, revocation.close_message)
        if ended:
            log.info("websockets of a revoked credential closed",
                     extra={"reason": revocation.reason, "sockets": len(ended)})

    async def close_all(self) -> None:
        for check in self._gap_checks.values():
            check.cancel()
        self._gap_checks.clear()
        for outbox in list(self.connections.values()):
            await outbox.close(WSCloseCode.GOING_AWAY, b"server shutdown")
            await outbox.stop()
        self.connections.clear()
