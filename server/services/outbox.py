"""Events that survive the bus being away (issue #18): a service stages the messages announcing a
change in the change's own transaction (``stage``), then after the commit publishes them at once
and marks them delivered (``deliver``, the fast path). What the bus refused — or what a process
that died after its commit never published — is published later, in id order, by the dispatcher
every process runs (``dispatching``): rows older than ``AGE`` seconds that nobody delivered.

A late event can reach a client after a newer one, or twice (a publish whose mark was lost): the
hub drops a meeting event older than, or identical to, the last one of its row
(``server.live.dedup``); KPI slides and directive notices are whole snapshots or "re-read" hints,
harmless twice. Only ordered, state-changing topics go through here; the best-effort kinds
(``wire.UNORDERED``: health, speaking, on_air) and credential notices are published directly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from server.db import transaction
from server.live.bus import Bus
from server.outage import AfterCommitBus, is_outage
from server.services.deps import Deps
from sessions.models.base import utcnow
from sessions.store import outbox as store

log = logging.getLogger("hoinghi.outbox")

AGE = 1.0  # seconds an undelivered row waits for its fast path before a dispatcher takes it
HOLD = 10.0  # seconds a dispatcher's claim lasts (a dispatcher that died only delays its rows)
PERIOD = 0.5  # seconds between dispatcher rounds
BATCH = 500  # rows per round
KEEP = timedelta(hours=1)  # delivered rows are kept this long (what happened, for an operator), then purged
PURGE_EVERY = 60.0  # seconds
SETTLE = 2.0  # seconds the dispatcher waits after the bus is back before it publishes the backlog
PROBE_TOPIC = "outbox.probe"  # published to learn whether the bus is back (nobody subscribes)


@dataclass
class Staged:
    """Messages stored in a transaction, to publish once it committed."""

    ids: list[int] = field(default_factory=list)
    messages: list[tuple[str, bytes]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.ids)

    def extend(self, other: Staged) -> None:
        self.ids += other.ids
        self.messages += other.messages


async def stage(db: AsyncSession, messages: Iterable[tuple[str, bytes]]) -> Staged:
    """Store (topic, payload) messages in ``db``'s transaction: they exist if and only if it commits."""
    messages = list(messages)
    return Staged(await store.add(db, messages, utcnow()), messages)


async def _send(bus: Bus, topic: str, payload: bytes, *, quiet: bool = False) -> bool:
    inner = bus.inner if isinstance(bus, AfterCommitBus) else bus
    try:
        await inner.publish(topic, payload)
    except Exception as exc:
        if not is_outage(exc):
            log.exception("event not published; the outbox keeps it", extra={"topic": topic})
        elif not quiet:
            log.warning("event not published: the bus is unreachable; the outbox delivers it later",
                        extra={"topic": topic, "error": type(exc).__name__})
        return False
    return True


async def _publish(bus: Bus, ids: list[int], messages: list[tuple[str, bytes]], quiet: bool = False) -> list[int]:
    """Publish in order, stopping at the first refusal (a later event must not overtake it); the ids sent."""
    sent: list[int] = []
    for id_, (topic, payload) in zip(ids, messages, strict=True):
        if not await _send(bus, topic, payload, quiet=quiet):
            break
        sent.append(id_)
    return sent


async def deliver(deps: Deps, staged: Staged) -> None:
    """After the commit: publish now. A failure is logged, never raised — the change is done and
    the dispatcher publishes what is left. What went out is marked delivered by this process's
    dispatcher in its next round (``deps.published``), within ``PERIOD``: well before another
    process's dispatcher would take the rows (older than ``AGE``), and a row published twice is
    dropped by the hub anyway. One transaction per change, not two."""
    if not staged:
        return
    sent = await _publish(deps.bus, staged.ids, staged.messages)
    deps.published.extend(sent)


class Dispatcher:
    """One process's dispatcher. After the bus refused a publish it waits for the bus to answer
    again, then ``SETTLE`` seconds more — the other processes' subscriptions come back within about
    a second and a half (server.live.bus) — so that the late events reach every process."""

    def __init__(self, deps: Deps, age: float = AGE) -> None:
        self.deps, self.age = deps, age
        self.back_at: float | None = -SETTLE  # when the bus answered again; None: it refused, not back yet

    async def mark_published(self) -> None:
        """Mark delivered what this process published at once since the last round."""
        published = self.deps.published
        if not published:
            return
        ids = published[:]
        async with transaction(self.deps.db) as db:
            for start in range(0, len(ids), 1000):
                await store.mark(db, ids[start:start + 1000], utcnow())
        del published[:len(ids)]

    async def once(self) -> int:
        """One round: claim what waits, publish it in id order, mark it (or free it); how many went out."""
        bus = self.deps.bus
        await self.mark_published()
        if self.back_at is None:
            if not await _send(bus, PROBE_TOPIC, b"", quiet=True):
                return 0
            self.back_at = time.monotonic()
        if time.monotonic() - self.back_at < SETTLE:
            return 0
        now = utcnow()
        async with transaction(self.deps.db) as db:
            rows = await store.claim(db, now, created_before=now - timedelta(seconds=self.age),
                                     until=now + timedelta(seconds=HOLD), limit=BATCH)
        if not rows:
            return 0
        sent = await _publish(bus, [r.id for r in rows], [(r.topic, r.payload) for r in rows], quiet=True)
        if len(sent) < len(rows):
            self.back_at = None
        async with transaction(self.deps.db) as db:
            await store.mark(db, sent, utcnow())
            await store.release(db, [r.id for r in rows[len(sent):]])
        if sent:
            log.info("outbox: late events published", extra={"events": len(sent), "waiting": len(rows) - len(sent)})
        return len(sent)


async def dispatching(deps: Deps, period: float = PERIOD) -> None:
    """The dispatcher task of one process (server.app), until cancelled."""
    dispatcher = Dispatcher(deps)
    purged_at = 0.0
    failing = False
    while True:
        sent = 0
        try:
            sent = await dispatcher.once()
            if time.monotonic() - purged_at >= PURGE_EVERY:
                async with transaction(deps.db) as db:
                    await store.purge(db, utcnow() - KEEP)
                purged_at = time.monotonic()
            failing = False
        except Exception as exc:
            if not failing:
                log.warning("outbox dispatcher: round failed; retrying",
                            extra={"error": f"{type(exc).__name__}: {exc}"})
            failing = True
        await asyncio.sleep(0 if sent >= BATCH else period)
