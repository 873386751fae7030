"""Fresh snapshots for subscriptions that may have missed events: the bus subscription came back
after a drop, or a meeting's seqs skipped ahead and stayed so (server.live.hub, server.live.gaps).

Each topic is read once and its snapshot frame serialised once for all its subscribers (a
``meeting:`` one per own seat: the meeting and the seats read in two queries per meeting). The
frame is the one a ``subscribe`` answers, sent unasked and marked ``"resync": true``
(docs/protocol.md). While the snapshot is read the subscription holds back what arrives, as when
it was first made, so the client gets the snapshot and then every later event. A read that fails
(the database away too) releases what was held and is tried again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.live.hub import Hub, Subscription
from server.live.wire import dumps
from server.services import kpi_slides
from sessions.errors import DomainError
from sessions.store import directive_views, live, slide_push

log = logging.getLogger("hoinghi.resync")
RETRY_SECONDS = 1.0

Frames = list[tuple[Subscription, bytes, int]]  # (subscription, snapshot frame, the seq it holds)


class Resync:
    """Resyncs run one at a time; subscriptions asked for meanwhile join the next one."""

    def __init__(self, db: async_sessionmaker[AsyncSession], hub: Hub, clock: Callable[[], datetime]) -> None:
        self.db, self.hub, self.clock = db, hub, clock
        self.wanted: set[Subscription] = set()
        self.task: asyncio.Task[None] | None = None
        self.done = 0  # subscriptions resynced (tests, logs)

    def request(self, subs: Iterable[Subscription]) -> None:
        self.wanted.update(subs)
        if self.wanted and (self.task is None or self.task.done()):
            self.task = asyncio.create_task(self._run(), name="resync")

    async def _run(self) -> None:
        while self.wanted:
            subs, self.wanted = list(self.wanted), set()
            try:
                self.done += await self.once(subs)
            except Exception as exc:
                log.warning("resync failed; trying again", extra={"subscriptions": len(subs),
                                                                  "error": f"{type(exc).__name__}: {exc}"})
                self.wanted.update(subs)
                await asyncio.sleep(RETRY_SECONDS)

    async def once(self, subs: list[Subscription]) -> int:
        """One fresh snapshot for each of ``subs`` still followed; how many were sent."""
        # A subscription whose first snapshot is under way gets that one (it is being read now).
        subs = [s for s in subs if s.buffer is None and s.conn.subs.get(s.topic) is s]
        for sub in subs:
            sub.buffer = []  # hold back what arrives until the new snapshot is queued
        try:
            async with self.db() as db:
                frames = await read(db, subs, self.clock())
        except BaseException:
            for sub in subs:
                sub.snapshot_sent(sub.snapshot_seq)  # release what was held, as before
            raise
        # From here to the end, no await: nothing can slip between a snapshot and its events.
        lowest: dict[int, int] = {}
        for sub, _frame, seq in frames:
            if sub.kind in ("meeting", "rollcall"):
                lowest[sub.meeting_id] = min(seq, lowest.get(sub.meeting_id, seq))
        for meeting, seq in lowest.items():
            self.hub.based(meeting, seq)
        sent = 0
        for sub, frame, seq in frames:
            if sub.conn.subs.get(sub.topic) is sub:
                sub.conn.send(frame)
                sent += 1
            sub.snapshot_sent(seq)
        return sent

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


def _group(subs: Iterable[Subscription], key: Callable[[Subscription], Any]) -> dict[Any, list[Subscription]]:
    groups: dict[Any, list[Subscription]] = {}
    for sub in subs:
        groups.setdefault(key(sub), []).append(sub)
    return groups


async def read(db: AsyncSession, subs: list[Subscription], now: datetime) -> Frames:
    """The snapshot frames of ``subs``, each topic read once. A topic that can no longer be read
    (its meeting or unit is gone) is skipped: its subscribers keep what they had."""
    frames: Frames = []
    by_kind = _group(subs, lambda s: s.kind)
    for meeting, group in _group(by_kind.get("meeting", ()), lambda s: s.meeting_id).items():
        try:
            state = await live.meeting_state(db, meeting)
            seats = await live.seat_rows(db, meeting, {s.unit_id for s in group})
            slides = await slide_push.snapshot_parts(db, meeting, {s.unit_id for s in group})
        except DomainError:
            _skip(group, f"meeting:{meeting}")
            continue
        for unit, same in _group(group, lambda s: s.unit_id).items():
            data = {"seq": state["seq"], "meeting": state, "seat": seats.get(unit), "slides": slides.get(unit)}
            frame = dumps({"type": "snapshot", "topic": f"meeting:{meeting}", "meeting": meeting,
                           "seq": state["seq"], "data": data, "resync": True})
            frames += [(s, frame, state["seq"]) for s in same]
    for topic, group in _group(by_kind.get("rollcall", ()), lambda s: s.topic).items():
        first = group[0]
        try:
            snap = await live.rollcall_snapshot(db, first.meeting_id, first.unit_id)
        except DomainError:
            _skip(group, topic)
            continue
        frame = dumps({"type": "snapshot", "topic": topic, "meeting": first.meeting_id, "seq": snap["seq"],
                       "data": snap, "resync": True})
        frames += [(s, frame, snap["seq"]) for s in group]
    kpi = _group(by_kind.get("kpi", ()), lambda s: s.topic)
    if kpi:
        slides = await kpi_slides.slides(db, {group[0].unit_id for group in kpi.values()})
        for topic, group in kpi.items():
            frame = dumps({"type": "snapshot", "topic": topic, "unit": topic.split(":", 1)[1], "seq": 0,
                           "data": slides[group[0].unit_id], "resync": True})
            frames += [(s, frame, -1) for s in group]  # slides are whole: what was held back follows
    for topic, group in _group(by_kind.get("directives", ()), lambda s: s.topic).items():
        snap = await directive_views.dashboard(db, group[0].unit_id, now)
        frame = dumps({"type": "snapshot", "topic": topic, "unit": topic.split(":", 1)[1], "seq": 0,
                       "data": snap, "resync": True})
        frames += [(s, frame, -1) for s in group]
    return frames


def _skip(group: list[Subscription], topic: str) -> None:
    log.info("resync: topic no longer readable; its subscribers keep their state", extra={"topic": topic})
    for sub in group:
        sub.snapshot_sent(sub.snapshot_seq)
